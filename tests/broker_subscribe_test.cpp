#include "tests/broker_test_support.hpp"
