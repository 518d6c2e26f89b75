// main.cpp - the generated header used from C++.
#include <cstdio>
#include <vector>

#include "xor.h"

int main()
{
	int err = 0;
	xor_instance *net = xor_new(&err);
	if (!net) {
		std::printf("downstream FAILED: %s\n", nnrt_strerror(err));
		return 1;
	}
	std::vector<float> x = {1.0f, -1.0f}, out(XOR_OUTPUT_SIZE);
	err = xor_infer(net, x.data(), 1, out.data());
	xor_free(net);
	if (err || out[0] + out[1] < 0.99f || out[0] + out[1] > 1.01f) {
		std::printf("downstream FAILED: C++ inference\n");
		return 1;
	}
	std::printf("downstream C++ ok\n");
	return 0;
}
