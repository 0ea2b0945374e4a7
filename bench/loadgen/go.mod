module quorum.dev/bench/loadgen

go 1.22
