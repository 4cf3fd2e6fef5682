// Starts Swagger UI on /schema with the service's own OpenAPI document. A file, not an
// inline script, so that the page's Content-Security-Policy can forbid inline code.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var target = document.getElementById("api-docs");
  if (!target || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.SwaggerUIBundle({
    url: target.getAttribute("data-spec-url"),
    domNode: target,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
