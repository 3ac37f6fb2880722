// Loopback addresses claimed across berth daemons on one machine (tests, two users). Each
// instance's shim holds an flock on DIR/<host>:<port> for as long as it runs; a daemon
// choosing an address skips those whose lock is held. Probing for a listener alone is not
// enough: two daemons can both find an address free before either instance binds it, and one
// daemon's health check then passes on the other's program. The lock goes with the shim,
// whatever ends it (kill -9 included), and survives the daemon, as instances do.
// Linked into berth-shim as well: no fmt, no iostreams, no exceptions.
#pragma once

#include <string>

namespace berth {

// Shared by every daemon of the machine (world-writable and sticky, as /tmp).
inline constexpr char kAddressClaimsDir[] = "/tmp/berth-addresses";

// The lock file of host:port in `dir`.
std::string AddressClaimPath(const std::string& dir, const std::string& host, int port);

// Takes the claim: a close-on-exec descriptor holding the lock (keep it open), or -1 with
// errno set (EWOULDBLOCK: another process holds it). Makes `dir` when missing.
int ClaimAddress(const std::string& path);

// Gives the claim up and removes its file (a claim a kill -9 ended leaves the file, reused by
// the next claimer). `fd` is what ClaimAddress returned.
void ReleaseAddress(const std::string& path, int fd);

// Whether some process holds the claim now (false when nobody ever took it).
bool AddressClaimed(const std::string& path);

}  // namespace berth
