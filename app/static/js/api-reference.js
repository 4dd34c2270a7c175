// The API reference (/api/docs): Swagger UI over the OpenAPI document named by the page.
// A file of its own because the Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  var root = document.getElementById("api-reference");
  window.apiReference = SwaggerUIBundle({
    url: root.dataset.documentUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // the public validator badge would load from another site: the page works offline
    defaultModelsExpandDepth: 0,
  });
})();
