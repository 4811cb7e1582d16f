#pragma once
// The subcommands of `levee`. Each takes the arguments after its name and returns the
// process exit code.

#include <string>
#include <vector>

namespace levee::apps {

int run_demo(const std::vector<std::string>& args);

} // namespace levee::apps
