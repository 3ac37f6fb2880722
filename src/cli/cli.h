// The client subcommands of `berth`: login, projects, tokens, services. Each talks to the
// daemon's REST API; none touches the store.
#pragma once

namespace CLI {
class App;
}

namespace berth {

// Adds every client subcommand to `app`.
void AddClientCommands(CLI::App& app);

}  // namespace berth
