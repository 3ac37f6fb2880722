// "Did you mean ...?" for names people type: the known name nearest to a mistyped one, by
// edit distance (a swap of two neighbouring letters counts as one edit, as typos go).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace berth {

// The candidate nearest to `word`, or "" when none is near enough to be what was meant (at
// most a third of the word's letters wrong, and at least one right).
std::string Nearest(std::string_view word, const std::vector<std::string>& candidates);

// "; did you mean 'x'?" for the nearest candidate, or "" when there is none.
std::string DidYouMean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace berth
