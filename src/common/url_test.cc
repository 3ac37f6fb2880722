#include "common/url.h"

#include <gtest/gtest.h>

namespace berth {
namespace {

TEST(PercentEncodeTest, KeepsUnreservedAndWhatIsAskedAndEncodesTheRest) {
  EXPECT_EQ(PercentEncode("a-Z_0.9~"), "a-Z_0.9~");
  EXPECT_EQ(PercentEncode("my svc/x?y=1&z"), "my%20svc%2Fx%3Fy%3D1%26z");
  EXPECT_EQ(PercentEncode("/p-s/a%20b?x=1", "/"), "/p-s/a%2520b%3Fx%3D1");
  EXPECT_EQ(PercentEncode("\r\n\xc3\xa9"), "%0D%0A%C3%A9");
}

}  // namespace
}  // namespace berth
