#include "control/service_directory.h"

#include <fmt/format.h>

#include <cctype>
#include <filesystem>

#include "common/file_util.h"
#include "common/log.h"

namespace berth {

std::string ServiceEnvPrefix(const std::string& name) {
  std::string key = "BERTH_SERVICE_" + name + "_";
  for (char& c : key) {
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return key;
}

std::string ServiceDirectory::Format(const std::map<std::string, ServiceAddress>& services) {
  std::string out =
      "# The project's services with a ready instance, kept current by berth (the same\n"
      "# variables in a program's environment are a snapshot of its start).\n";
  for (const auto& [name, a] : services) {
    std::string key = ServiceEnvPrefix(name);
    out += fmt::format("{}HOST={}\n{}PORT={}\n", key, a.host, key, a.port);
  }
  return out;
}

ServiceDirectory::ServiceDirectory(std::function<std::string(const std::string&)> file_of,
                                   std::chrono::milliseconds interval)
    : file_of_(std::move(file_of)), interval_(interval), writer_([this] { Run(); }) {}

ServiceDirectory::~ServiceDirectory() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  writer_.join();
}

void ServiceDirectory::Set(const std::string& project, const std::string& name,
                           std::optional<ServiceAddress> address) {
  MutexLock lock(mu_);
  auto& services = projects_[project];
  auto it = services.find(name);
  if (address ? (it != services.end() && it->second == *address) : it == services.end()) {
    return;  // nothing changed: no write
  }
  if (address) {
    services[name] = *address;
  } else {
    services.erase(it);
  }
  dirty_.insert(project);
  cv_.NotifyAll();
}

void ServiceDirectory::Flush() {
  MutexLock writing(write_mu_);
  MutexLock lock(mu_);
  WritePending();
}

void ServiceDirectory::WritePending() {
  while (!dirty_.empty()) {
    std::string project = *dirty_.begin();
    dirty_.erase(dirty_.begin());
    std::string text = Format(projects_[project]);
    std::string path = file_of_(project);
    mu_.Unlock();  // the disk is slow; Set goes on meanwhile
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    if (auto s = WriteFileAtomic(path, text, 0644, Durability::kProcessCrash); !s.ok()) {
      LogWarn("cannot write the project's services file",
              {{"project", project}, {"error", s.message()}});
    }
    mu_.Lock();
  }
}

void ServiceDirectory::Run() {
  while (true) {
    {
      MutexLock lock(mu_);
      cv_.WaitFor(mu_, std::chrono::hours(1),
                  [this]() REQUIRES(mu_) { return stop_ || !dirty_.empty(); });
      if (!stop_) {
        // Let a burst of changes gather into one write.
        cv_.WaitFor(mu_, interval_, [this]() REQUIRES(mu_) { return stop_; });
      }
    }
    MutexLock writing(write_mu_);
    MutexLock lock(mu_);
    WritePending();
    if (stop_) {
      return;
    }
  }
}

}  // namespace berth
