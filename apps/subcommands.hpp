#pragma once
// The subcommands of `levee`. Each takes the arguments after its name and returns the
// process exit code.

#include <string>
#include <vector>

namespace levee {
struct role;
}

namespace levee::apps {

int run_demo(const std::vector<std::string>& args);
int run_node(const std::vector<std::string>& args);
/// `levee node` with a program's own roles (include/levee/node.hpp, node_program).
int run_node_with(const std::vector<std::string>& args, const std::vector<role>& custom);
int run_local(const std::vector<std::string>& args);
int run_query(const std::vector<std::string>& args);
int run_satellites(const std::vector<std::string>& args);
int run_stats(const std::vector<std::string>& args);
int run_cluster(const std::vector<std::string>& args);
int run_stream(const std::vector<std::string>& args);
int run_pub(const std::vector<std::string>& args);
int run_sub(const std::vector<std::string>& args);
int run_load(const std::vector<std::string>& args);
/// Maintainer's: every config key the parsers accept (tests/check_limit_keys.sh uses it).
int run_config_keys(const std::vector<std::string>& args);

} // namespace levee::apps
