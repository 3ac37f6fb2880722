// libFuzzer target for the recipe parsers: any bytes as a recipe (berth's or Neptune's form),
// as run overrides of a valid recipe, and as a node's BERTH_NODE. Besides not crashing, a
// recipe that parses must survive its own round trips: berth's form and Neptune's cache form
// parse back to the same recipe, and its run arguments are computed without error.
// Built with the clang sanitizer build; CTest runs it for a few seconds.
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json.hpp>

#include "graph/node_io.h"
#include "graph/recipe.h"

namespace json = boost::json;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "recipe_fuzz: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)berth::ParseNodeConfig(text);
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) {
    return 0;
  }
  auto r = berth::ParseRecipe(v);
  if (r.ok()) {
    auto again = berth::ParseRecipe(berth::RecipeToJson(*r));
    Check(again.ok(), "berth's form of a valid recipe does not parse");
    Check(json::serialize(berth::RecipeToJson(*again)) == json::serialize(berth::RecipeToJson(*r)),
          "berth's form does not round-trip");
    auto cached = berth::ParseRecipe(berth::RecipeToNeptune(*r));
    Check(cached.ok(), "Neptune's cache form of a valid recipe does not parse");
    Check(json::serialize(berth::RecipeToNeptune(*cached)) ==
              json::serialize(berth::RecipeToNeptune(*r)),
          "Neptune's cache form does not round-trip");
    Check(berth::RunArgs(*r, {}).ok(), "a valid recipe has no run arguments");
  }
  // The same bytes as the overrides of a fixed recipe: refused or applied, never a crash.
  static const berth::Recipe kFixed = *berth::ParseRecipe(json::parse(
      R"({"name": "f", "graph": {"nodes": ["ping", "passthrough"], "edges": [[0, 1]]},
          "args": [{"a": 1}, {}]})"));
  if (v.is_object()) {
    (void)berth::RunArgs(kFixed, v.as_object());
  }
  return 0;
}
