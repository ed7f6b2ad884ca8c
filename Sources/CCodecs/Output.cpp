#include "Common.hpp"

#include <cstdlib>

extern "C" void CCodecs_free(CCodecs_Output *output) {
    if (output == nullptr) return;
    std::free(output->data);
    output->data = nullptr;
    output->length = 0;
}

extern "C" uint64_t CCodecs_frameBytes(const CCodecs_Image *image) {
    return image == nullptr ? 0 : ccodecs::frameBytes(*image);
}
