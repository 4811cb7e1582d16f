#include "limits/process_memory.hpp"

#include <fstream>

namespace levee {

namespace {

uint64_t status_field_bytes(const std::string& field) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0 && line.size() > field.size() && line[field.size()] == ':')
      return std::stoull(line.substr(field.size() + 1)) * 1024;  // the kernel writes kB
  return 0;
}

} // namespace

uint64_t peak_rss_bytes() {
  return status_field_bytes("VmHWM");
}

uint64_t current_rss_bytes() {
  return status_field_bytes("VmRSS");
}

bool reset_peak_rss() {
  std::ofstream out{"/proc/self/clear_refs"};
  out << "5";
  return static_cast<bool>(out);
}

} // namespace levee
