/* MPI for data-parallel training (built only with the MPI trait: `make build-mpi`).
   MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE and friends are macros Swift cannot import
   (in Open MPI they take addresses of library globals, in MPICH they are integer casts), so these
   accessors hand them over as functions. */
#include <mpi.h>

static inline MPI_Comm ldm_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype ldm_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Op ldm_mpi_sum(void) { return MPI_SUM; }
static inline void *ldm_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler ldm_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int ldm_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int ldm_mpi_success(void) { return MPI_SUCCESS; }
static inline int ldm_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
