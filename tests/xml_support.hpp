#pragma once
// Reading `levee load`'s HTML report back as XML (libxml2): it is written well-formed, so a
// strict XML parser is the test that it is, and XPath reads its plots' data-* numbers.

#include <memory>
#include <string>

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

namespace levee::test {

using xml_document = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

/// The document, or null when `text` is not well-formed XML.
inline xml_document parse_xml(const std::string& text) {
  return {xmlReadMemory(text.data(), static_cast<int>(text.size()), "report.html", nullptr,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
          xmlFreeDoc};
}

/// The string value of an XPath expression ("svg" is SVG's namespace):
/// xpath_string(doc, "//svg:svg[@data-plot='ramp']/@data-knee").
inline std::string xpath_string(const xml_document& doc, const std::string& path) {
  std::unique_ptr<xmlXPathContext, decltype(&xmlXPathFreeContext)> ctx{
    xmlXPathNewContext(doc.get()), xmlXPathFreeContext};
  xmlXPathRegisterNs(ctx.get(), reinterpret_cast<const xmlChar*>("svg"),
                     reinterpret_cast<const xmlChar*>("http://www.w3.org/2000/svg"));
  std::unique_ptr<xmlXPathObject, decltype(&xmlXPathFreeObject)> found{
    xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(("string(" + path + ")").c_str()),
                           ctx.get()),
    xmlXPathFreeObject};
  if (!found || found->type != XPATH_STRING)
    return "(no such node: " + path + ")";
  return reinterpret_cast<const char*>(found->stringval);
}

} // namespace levee::test
