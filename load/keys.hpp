// Message keys for `levee load --target publish --keys N`: which of N keys each message
// carries, drawn uniformly or from a Zipf distribution (a few hot keys, a long tail: how
// real keyed traffic such as user or device ids usually looks). The key picks the
// partition by hash, so the distribution decides how evenly the partitions are loaded.

#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace levee::load {

enum class key_distribution { uniform, zipf };

/// "uniform" or "zipf"; nullopt for anything else.
std::optional<key_distribution> parse_key_distribution(const std::string& text);

/// Draws key indexes 0..n-1. Zipf with exponent 1: key i is drawn with probability
/// proportional to 1/(i+1), through a table of n cumulative weights (8 bytes a key, so n
/// is bounded by max_keys). Deterministic for a given seed: each connection gets its own.
class key_chooser {
public:
  static constexpr uint64_t max_keys = 1'000'000;

  key_chooser(uint64_t n, key_distribution d, uint64_t seed);

  uint64_t next_index();
  /// "k<index>": the key text a message carries.
  std::string next_key() { return "k" + std::to_string(next_index()); }

  uint64_t size() const noexcept { return n_; }

private:
  uint64_t n_;
  key_distribution d_;
  std::mt19937_64 rng_;
  std::vector<double> cdf_;  // zipf only
};

} // namespace levee::load
