// What the gateway writes on each side of an exchange, as pure functions of the parsed heads:
// the request head sent to an instance (berth's token and cookie removed, hop-by-hop fields
// dropped, X-Forwarded-* set, the path rewritten for strip and pinned routes), the response
// head sent back to the client (its hop-by-hop fields replaced by the gateway's own), and the
// gateway's JSON error responses. No I/O here, so that each rule has a unit test.
#pragma once

#include <string>
#include <string_view>

#include "gateway/http_head.h"
#include "gateway/route_table.h"

namespace berth {

// Hop-by-hop fields are the proxy's own business (RFC 9110 §7.6.1).
bool IsHopByHop(std::string_view name);

// The token of a request: "Authorization: Bearer <t>" or the login page's cookie; empty when
// neither is there.
std::string_view RequestToken(const MessageHead& head);

// berth's login cookie (`berth_token`) in a Cookie header's value; empty when absent.
std::string_view CookieToken(std::string_view cookies);

// A Cookie header's value without berth's own cookie, which is not the service's business.
std::string CookiesWithoutToken(std::string_view cookies);

// Where a browser without a valid token is sent for `head` (a GET or HEAD accepting
// text/html): the login page, with the request's target as `next`, query-encoded; "" for
// other requests (API clients get their 401).
std::string LoginRedirect(const MessageHead& head);

// Whether the request asks to become a tunnel (websocket): Connection: upgrade and an Upgrade.
bool IsUpgrade(const MessageHead& head);

// The head to send upstream for `head`, routed by `match`, from a client at `peer_ip`.
// "Expect" is not passed on: the gateway answers 100-continue itself.
std::string UpstreamRequestHead(const MessageHead& head, const RouteMatch& match,
                                std::string_view peer_ip);

// The head to send the client for an instance's response `resp` (whose raw bytes start
// `raw`): the status line and end-to-end fields as they came, and "Connection: close" when
// the client connection ends with this exchange (`keep` false). An upgrade's (101) fields
// pass whole.
std::string ClientResponseHead(const MessageHead& resp, std::string_view raw, bool keep);

// A complete gateway error response with berth's error body
// {"error":{"code":...,"message":...}}; `extra_headers` are whole lines ("Name: v\r\n").
std::string ErrorResponse(int status, std::string_view reason, std::string_view code,
                          std::string_view message, bool keep_alive,
                          std::string_view extra_headers = {});

}  // namespace berth
