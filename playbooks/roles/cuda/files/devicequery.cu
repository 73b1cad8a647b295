// Device query for provision's cuda role: proves the toolkit compiles and the runtime finds the
// GPUs. Prints the lines of the CUDA samples' deviceQuery that the role's check reads.
// On simulated nodes the nvcc stand-in runs its equivalent (provision-sim-program: devicequery).
#include <cstdio>
#include <cuda_runtime.h>

int main() {
  std::printf("./deviceQuery Starting...\n\n CUDA Device Query (Runtime API) version "
              "(CUDART static linking)\n\n");
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    std::printf("cudaGetDeviceCount returned %d\n-> %s\nResult = FAIL\n", static_cast<int>(err),
                cudaGetErrorString(err));
    return 1;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("Detected %d CUDA Capable device(s)\n", count);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p;
    cudaGetDeviceProperties(&p, i);
    std::printf("\nDevice %d: \"%s\"\n", i, p.name);
    std::printf("  CUDA Driver Version / Runtime Version          %d.%d / %d.%d\n",
                driver / 1000, (driver % 100) / 10, runtime / 1000, (runtime % 100) / 10);
    std::printf("  CUDA Capability Major/Minor version number:    %d.%d\n", p.major, p.minor);
    std::printf("  Total amount of global memory:                 %.0f MBytes (%llu bytes)\n",
                static_cast<double>(p.totalGlobalMem) / 1048576.0,
                static_cast<unsigned long long>(p.totalGlobalMem));
    std::printf("  Device PCI Domain ID / Bus ID / location ID:   %d / %d / %d\n",
                p.pciDomainID, p.pciBusID, p.pciDeviceID);
  }
  std::printf("\ndeviceQuery, CUDA Driver = CUDART, CUDA Driver Version = %d.%d, CUDA Runtime "
              "Version = %d.%d, NumDevs = %d\n", driver / 1000, (driver % 100) / 10,
              runtime / 1000, (runtime % 100) / 10, count);
  std::printf("Result = %s\n", count > 0 ? "PASS" : "FAIL");
  return count > 0 ? 0 : 1;
}
