// SQLite backend of Store: WAL journal, foreign keys, a busy timeout, and schema migrations
// versioned by PRAGMA user_version. `path` may be ":memory:".
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace berth {

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace berth
