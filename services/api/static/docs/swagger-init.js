// Starts Swagger UI at /docs on the document this gateway serves (the page's data-openapi-url).
// It is a file rather than an inline script so that the page's Content-Security-Policy can allow
// scripts from the gateway itself only.
(function () {
  "use strict";
  var script = document.currentScript;
  window.ui = SwaggerUIBundle({
    url: script.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
