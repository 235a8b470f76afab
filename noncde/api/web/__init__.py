"""noncde.api (non-CDE): the HTTP edge of the merchant API (routes, schemas, the card-data
guard, the OpenAPI document). Part of the app layer: it uses the runtime built by bootstrap."""
