// Files compiled into the binary by CMake's berth_embed (cmake/berth.cmake): scaffolds for
// `berth init`, the API's OpenAPI document and docs page, service templates. Each NAME is a function returning
// its files, paths relative to the folder they came from.
#pragma once

#include <string_view>
#include <vector>

namespace berth::embedded {

struct EmbeddedFile {
  std::string_view path;
  std::string_view content;
};

const std::vector<EmbeddedFile>& python_scaffold();
const std::vector<EmbeddedFile>& cpp_scaffold();
const std::vector<EmbeddedFile>& api_docs();
const std::vector<EmbeddedFile>& templates();
// The dashboard's built assets (src/dashboard): index.html and its hashed scripts and styles.
const std::vector<EmbeddedFile>& dashboard();

// The file at `path` in `files`, or nullptr.
inline const EmbeddedFile* Find(const std::vector<EmbeddedFile>& files, std::string_view path) {
  for (const auto& f : files) {
    if (f.path == path) {
      return &f;
    }
  }
  return nullptr;
}

}  // namespace berth::embedded
