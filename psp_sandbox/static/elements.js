/*
 * FinCore PSP sandbox: the card element frame's script. Runs on the sandbox's origin only.
 * Posts the card fields to the sandbox (same origin) and hands the merchant page the token only.
 */
(function () {
  'use strict';
  var KEY = document.body.getAttribute('data-key');
  var PARENT = document.body.getAttribute('data-origin');
  var form = document.getElementById('card-form');
  var number = document.getElementById('number');
  var exp = document.getElementById('exp');
  var cvc = document.getElementById('cvc');

  form.addEventListener('submit', function (event) { event.preventDefault(); });

  function tokenize() {
    var parts = exp.value.replace(/\s/g, '').split('/');
    var params = new URLSearchParams();
    params.set('type', 'card');
    params.set('card[number]', number.value.replace(/[\s-]/g, ''));
    params.set('card[exp_month]', parts[0] || '');
    params.set('card[exp_year]', parts[1] || '');
    params.set('card[cvc]', cvc.value.trim());
    params.set('key', KEY);
    return fetch('/v1/payment_methods', {
      method: 'POST',
      body: params,
      credentials: 'omit',
      headers: {'Content-Type': 'application/x-www-form-urlencoded'}
    }).then(function (response) {
      return response.json();
    }).then(function (body) {
      if (body.error) {
        return {error: {type: body.error.type, code: body.error.code || null,
                        message: body.error.message, param: body.error.param || null}};
      }
      number.value = '';
      exp.value = '';
      cvc.value = '';
      return {paymentMethod: {id: body.id, type: 'card', card: {
        brand: body.card.brand, last4: body.card.last4,
        exp_month: body.card.exp_month, exp_year: body.card.exp_year}}};
    }).catch(function () {
      return {error: {type: 'api_connection_error', code: null,
                      message: 'The payment service could not be reached.', param: null}};
    });
  }

  window.addEventListener('message', function (event) {
    // Only the page that embeds us, at the origin it declared, may ask for a token.
    if (event.origin !== PARENT || event.source !== window.parent) {
      return;
    }
    var data = event.data || {};
    if (data.type !== 'sandbox:create' || typeof data.nonce !== 'string') {
      return;
    }
    tokenize().then(function (result) {
      window.parent.postMessage({type: 'sandbox:result', nonce: data.nonce, result: result},
                                PARENT);
    });
  });

  if (window.parent !== window) {
    window.parent.postMessage({type: 'sandbox:ready'}, PARENT);
  }
})();
