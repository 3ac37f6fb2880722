#include "store/store.h"

#include "store/sqlite/sqlite_store.h"

namespace berth {

Result<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  std::string_view url = options.url;
  if (url == "sqlite::memory:") {
    return OpenSqliteStore(":memory:");
  }
  constexpr std::string_view kSqlite = "sqlite://";
  if (url.starts_with(kSqlite)) {
    return OpenSqliteStore(std::string(url.substr(kSqlite.size())));
  }
  return Status::InvalidArgument("store URL '" + options.url +
                                 "' has an unknown scheme; use sqlite:///path/state.db");
}

}  // namespace berth
