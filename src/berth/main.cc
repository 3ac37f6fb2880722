// The one berth binary: `berth serve` runs the daemon; every other subcommand is a client of
// its REST API.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "cli/cli.h"
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  CLI::App app{"berth: a self-hosted service platform. Deploy a folder or a template, get a "
               "supervised, versioned service behind a URL."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "berth 0.1.0");
  berth::AddServeCommand(app);
  berth::AddClientCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "berth: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
