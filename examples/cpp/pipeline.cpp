// tracetui's C API from C++: markers in a class template, a lambda and std::thread.
//
//   make        # builds ./pipeline with $(tracetui config --cflags --libs)
#include <tracetui/probe.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

template <typename T> class Stage {
public:
    explicit Stage(std::string name) : name_(std::move(name)) {}
    T run(T value, int step)
    {
        TT_MARKER(stage_run, "stage %s step %d value %lld", name_.c_str(), step,
                  static_cast<long long>(value));
        return value * 2 + 1;
    }

private:
    std::string name_;
};

int main(int argc, char **argv)
{
    int steps = argc > 1 ? std::atoi(argv[1]) : 100;
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; t++)
        threads.emplace_back([t, steps] {
            Stage<long long> stage("stage" + std::to_string(t));
            long long v = t;
            for (int i = 0; i < steps; i++)
                v = stage.run(v, i) % 1000003;
        });
    for (auto &th : threads)
        th.join();
    TT_MARKER(pipeline_done, "threads %d steps %d", 2, steps);
    std::printf("done\n");
    return 0;
}
