#include "load/keys.hpp"

#include <algorithm>

namespace levee::load {

std::optional<key_distribution> parse_key_distribution(const std::string& text) {
  if (text == "uniform")
    return key_distribution::uniform;
  if (text == "zipf")
    return key_distribution::zipf;
  return std::nullopt;
}

key_chooser::key_chooser(uint64_t n, key_distribution d, uint64_t seed)
    : n_(std::clamp<uint64_t>(n, 1, max_keys)), d_(d), rng_(seed) {
  if (d_ != key_distribution::zipf)
    return;
  cdf_.resize(n_);
  double sum = 0;
  for (uint64_t i = 0; i < n_; ++i) {
    sum += 1.0 / static_cast<double>(i + 1);
    cdf_[i] = sum;
  }
  for (auto& c : cdf_)
    c /= sum;
  cdf_.back() = 1.0;  // rounding must not leave a draw past the last key
}

uint64_t key_chooser::next_index() {
  if (d_ == key_distribution::uniform)
    return std::uniform_int_distribution<uint64_t>{0, n_ - 1}(rng_);
  auto u = std::uniform_real_distribution<double>{0.0, 1.0}(rng_);
  auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
  return static_cast<uint64_t>(std::min<std::ptrdiff_t>(it - cdf_.begin(), n_ - 1));
}

} // namespace levee::load
