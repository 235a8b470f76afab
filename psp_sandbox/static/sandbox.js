/*
 * FinCore PSP sandbox: browser tokenization library (the sandbox's Stripe.js).
 *
 * The card fields live in a frame served by the sandbox (another origin than the merchant's page):
 * the merchant's page never sees the card number or CVC, only the pm_ token this library returns
 * (the iframe pattern of PCI DSS SAQ A; see docs/psp-sandbox.md).
 *
 *   const sandbox = Sandbox('pk_test_...');
 *   sandbox.mountCard('#card-element');
 *   const result = await sandbox.createPaymentMethod();
 *   // {paymentMethod: {id: 'pm_...', card: {brand, last4, exp_month, exp_year}}} or {error: {...}}
 */
(function () {
  'use strict';
  var script = document.currentScript;
  var ORIGIN = new URL(script.src).origin;

  function nonce() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }

  function Sandbox(publishableKey) {
    if (!(this instanceof Sandbox)) {
      return new Sandbox(publishableKey);
    }
    if (typeof publishableKey !== 'string' || publishableKey.indexOf('pk_') !== 0) {
      throw new Error('Sandbox: a publishable key (pk_...) is required');
    }
    var self = this;
    this._key = publishableKey;
    this._frame = null;
    this._pending = {};
    this._ready = new Promise(function (resolve) { self._resolveReady = resolve; });
    window.addEventListener('message', function (event) {
      // Only our own frame, from the sandbox's origin, may answer.
      if (event.origin !== ORIGIN || !self._frame || event.source !== self._frame.contentWindow) {
        return;
      }
      var data = event.data || {};
      if (data.type === 'sandbox:ready') {
        self._resolveReady();
      } else if (data.type === 'sandbox:result' && typeof data.nonce === 'string') {
        var resolve = self._pending[data.nonce];
        if (resolve) {
          delete self._pending[data.nonce];
          resolve(data.result);
        }
      }
    });
  }

  Sandbox.prototype.mountCard = function (target) {
    var element = typeof target === 'string' ? document.querySelector(target) : target;
    if (!element) {
      throw new Error('Sandbox: mount target not found');
    }
    var frame = document.createElement('iframe');
    frame.src = ORIGIN + '/v1/elements/card?key=' + encodeURIComponent(this._key) +
      '&origin=' + encodeURIComponent(window.location.origin);
    frame.title = 'Secure card payment input';
    frame.name = 'sandbox-card';
    frame.setAttribute('allow', 'payment');
    frame.className = 'sandbox-card-frame';
    // CSSOM, not a style attribute: works under the merchant's own strict CSP.
    frame.style.border = '0';
    frame.style.width = '100%';
    frame.style.maxWidth = '32rem';
    frame.style.height = '3rem';
    element.appendChild(frame);
    this._frame = frame;
    return frame;
  };

  Sandbox.prototype.createPaymentMethod = function () {
    var self = this;
    if (!this._frame) {
      return Promise.reject(new Error('Sandbox: call mountCard() first'));
    }
    return this._ready.then(function () {
      return new Promise(function (resolve) {
        var id = nonce();
        self._pending[id] = resolve;
        self._frame.contentWindow.postMessage({type: 'sandbox:create', nonce: id}, ORIGIN);
      });
    });
  };

  window.Sandbox = Sandbox;
})();
