// Bounded retry for transient device states (TPM busy, self-test, TBS starting).
#pragma once

#include <algorithm>

namespace entraclaw::cng {

struct RetryPolicy {
  int attempts = 2;                // total tries, first one included: default = one retry
  double initial_delay_ms = 100.0;
  double multiplier = 2.0;
  double max_delay_ms = 2000.0;

  // Delay before try number `next_try` (2 = the first retry).
  double delay_before(int next_try) const {
    double delay = initial_delay_ms;
    for (int i = 2; i < next_try; ++i) delay *= multiplier;
    return std::min(delay, max_delay_ms);
  }
  bool valid() const {
    return attempts >= 1 && initial_delay_ms >= 0.0 && multiplier >= 1.0 && max_delay_ms >= 0.0;
  }
};

}  // namespace entraclaw::cng
