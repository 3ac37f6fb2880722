#include "gateway/route_table.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

ServiceRoute Route(int active, std::vector<std::pair<int, int>> port_rev) {
  ServiceRoute r;
  r.project = "p";
  r.name = "s";
  r.prefix = "/p-s";
  r.active_revision = active;
  for (auto [port, rev] : port_rev) {
    r.upstreams.push_back({"127.1.0.1", port, rev, "", nullptr});
  }
  return r;
}

TEST(RouteTableTest, MatchesPrefixAndPinnedRevision) {
  RouteTable t;
  t.Update(Route(1, {{8000, 1}}));
  auto m = t.Match("/p-s/x?y");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->prefix_len, 4u);
  EXPECT_FALSE(m->pinned_revision.has_value());
  EXPECT_TRUE(t.Match("/p-s").has_value());
  EXPECT_TRUE(t.Match("/p-s?x=1").has_value());
  auto pinned = t.Match("/p-s@2/x");
  ASSERT_TRUE(pinned.has_value());
  EXPECT_EQ(pinned->pinned_revision, 2);
  EXPECT_EQ(pinned->prefix_len, 6u);
  EXPECT_FALSE(t.Match("/p-sx/").has_value());
  EXPECT_FALSE(t.Match("/p-s@x/").has_value());
  EXPECT_FALSE(t.Match("/api/v1/services").has_value());
  t.Remove("/p-s");
  EXPECT_FALSE(t.Match("/p-s/").has_value());
}

TEST(RouteTableTest, PicksLeastOutstandingOfTheRevision) {
  RouteTable t;
  t.Update(Route(2, {{8000, 1}, {8001, 2}, {8002, 2}}));
  auto m = t.Match("/p-s/");
  ASSERT_TRUE(m.has_value());
  auto first = t.Pick(*m->route, 2);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->revision, 2);
  first->in_flight->fetch_add(1);
  auto second = t.Pick(*m->route, 2);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->port, first->port) << "the busy instance must not be picked";
  EXPECT_EQ(t.InFlight("127.1.0.1", first->port), 1);
  EXPECT_FALSE(t.Pick(*m->route, 3).has_value());
}

TEST(RouteTableTest, InFlightCountsSurviveRouteUpdates) {
  RouteTable t;
  t.Update(Route(1, {{8000, 1}}));
  auto up = t.Pick(*t.Match("/p-s/")->route, 1);
  up->in_flight->fetch_add(1);
  t.Update(Route(2, {{9000, 2}}));  // the old instance left the route but is still draining
  EXPECT_EQ(t.InFlight("127.1.0.1", 8000), 1);
  up->in_flight->fetch_sub(1);
  EXPECT_EQ(t.InFlight("127.1.0.1", 8000), 0);
}

}  // namespace
}  // namespace berth
