// The page served at /docs: self-contained HTML (inline CSS and JS, nothing fetched from the
// internet) that reads openapi.json relative to its own URL, lists the entrypoints with a
// form to send a JSON body, and shows and changes the parameters. Relative URLs keep it
// working whether or not the platform strips the context root.
#pragma once

#include <string_view>

namespace berth::sdk {

std::string_view DocsPage();

}  // namespace berth::sdk
