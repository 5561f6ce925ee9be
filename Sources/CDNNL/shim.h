// oneDNN's C API (Debian's libdnnl-dev), reached only through LDMCore's product layer.
#include <oneapi/dnnl/dnnl.h>
