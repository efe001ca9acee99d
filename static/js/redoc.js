// ReDoc on /api/redoc/ (templates/api_docs/redoc.html): started from this file, not an inline script, with the
// schema URL from the container's data-schema-url.
(function () {
  "use strict";

  // ReDoc's sidebar footer always shows Redocly's logo from cdn.redoc.ly (no option turns it off). The page loads
  // nothing from other hosts: an image source on another origin is dropped and the image hidden (the footer's
  // text link stays), whether it is set as an attribute or as the src property.
  function local(image, value) {
    var url = new URL(String(value), document.baseURI);
    if (url.protocol === "data:" || url.origin === window.location.origin) return true;
    image.hidden = true;
    return false;
  }
  var setAttribute = Element.prototype.setAttribute;
  HTMLImageElement.prototype.setAttribute = function (name, value) {
    if (String(name).toLowerCase() !== "src" || local(this, value)) setAttribute.call(this, name, value);
  };
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) {
      if (local(this, value)) src.set.call(this, value);
    },
  });

  var container = document.getElementById("redoc");
  window.Redoc.init(container.dataset.schemaUrl, { hideDownloadButtons: false, expandResponses: "200,201" }, container);
})();
