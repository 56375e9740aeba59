#ifndef DRIFTCHECK_CBROTLI_SHIM_H
#define DRIFTCHECK_CBROTLI_SHIM_H
#include <brotli/decode.h>
#endif
