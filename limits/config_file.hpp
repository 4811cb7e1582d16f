#pragma once
// Reads INI config files (Boost.Program_options' parser) into a flat map of
// "section.key" -> value, and applies command-line overrides of the form key=value.
// Interpretation and validation of the values belong to each consumer (limits_config, ...).

#include <map>
#include <string>
#include <vector>

#include "limits/status.hpp"

namespace levee {

using flat_config = std::map<std::string, std::string>;

/// Parses `path` (a regular file or a pipe). A missing file, one that may not or cannot be
/// read, a directory, a device, a syntax error or a key given twice is an error that names
/// the file, the problem and what to do.
result<flat_config> load_config_file(const std::string& path);

/// Parses INI text (for tests and embedded defaults); `origin` names it in errors.
result<flat_config> parse_config_text(const std::string& text, const std::string& origin);

/// Applies overrides "section.key=value" on top of `cfg` (the command line wins).
status apply_overrides(flat_config& cfg, const std::vector<std::string>& overrides);

} // namespace levee
