// ServiceOps is the one door for the changes a user makes to a service's lifecycle: create,
// define (PUT a definition), start / stop, delete. The native API, the servicectl and Orchest
// dialects and so the CLI all call these; a dialect translates requests and answers and
// nothing else. Each operation validates, admits, stores and hands the change to the runtime,
// in that order: a refused change stores nothing, and admission runs inside the store's write
// transaction. Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "control/controller.h"
#include "model/definition.h"
#include "store/store.h"

namespace berth {

class ServiceOps {
 public:
  // `store` and `controller` must outlive this.
  ServiceOps(Store& store, Controller& controller) : store_(store), controller_(controller) {}

  // Creates an empty service (CloudFlow's create; a definition comes with Define).
  // InvalidArgument for a bad name, NotFound for a missing project, AlreadyExists.
  // `defaults_json`: definition keys applied to later definitions that leave them out.
  Result<ServiceRecord> Create(const std::string& project, const std::string& name,
                               std::string_view defaults_json = "{}",
                               std::string_view event = "service created");
  // Stores `def` as the service's next revision and rolls it. NotFound for a missing service;
  // FailedPrecondition when it is deployed as versions (immutable) or when the machine
  // cannot hold its memory reservation; InvalidArgument when its container-tag was never
  // pushed (the message names the tags that were).
  Result<ServiceRecord> Define(const std::string& project, const std::string& name,
                               const Definition& def);
  // InvalidArgument naming the pushed tags unless `tag` was pushed to the service.
  Status RequirePushedTag(const std::string& project, const std::string& name,
                          const std::string& tag);
  // Create and Define as one: a service that cannot be defined is not left behind.
  Result<ServiceRecord> CreateDefined(const std::string& project, const std::string& name,
                                      const Definition& def, std::string_view event);
  // Starts or stops every instance of the service (`why` goes to its events).
  Status SetRunning(const std::string& project, const std::string& name, bool running,
                    std::string_view why);
  // Deletes the service: its instances stop, its artifacts, token and logs go. Returns the
  // record as it was. NotFound for a missing service.
  Result<ServiceRecord> Delete(const std::string& project, const std::string& name);

 private:
  // The stored change is what counts; a runtime that cannot follow it reports in events.
  void Refresh(const std::string& project, const std::string& name);

  Store& store_;
  Controller& controller_;
};

}  // namespace berth
