// How a training process finds its ranks. A launcher (mpirun, mpiexec, srun) says in the
// environment how many tasks it started; in a build with the MPI trait, such a process joins MPI
// and trains its share of every batch. The checks here keep launches from silently going wrong:
// N copies of an MPI-less `ldm` would each train the whole model into the same run folder, and an
// `ldm` whose MPI is not the launcher's sees itself as rank 0 of 1 in every task.

import Foundation
#if MPI
import CMPI
#endif

public enum ParallelLaunch {
    /// The number of tasks a launcher reports for this job and the variable that says so; nil
    /// outside a launcher. Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's hydra and srun's
    /// PMI-2 set PMI_SIZE, srun sets SLURM_STEP_NUM_TASKS for the tasks of a job step (not for a
    /// batch script itself, which runs outside any step).
    public static func launcherTasks(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> (count: Int, variable: String)? {
        for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"] {
            if let text = environment[variable], let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 1 { return (n, variable) }
        }
        return nil
    }

    /// True when this `ldm` was built with MPI (`make build-mpi`).
    public static var hasMPI: Bool {
        #if MPI
        return true
        #else
        return false
        #endif
    }

    /// The communicator of a training process: MPI's ranks when a launcher started this process
    /// in an MPI build, one process otherwise. Throws for launches that cannot work (see the file
    /// header); `note` hears the rank count.
    public static func communicator(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Communicator {
        guard let (tasks, variable) = launcherTasks(environment) else { return SingleProcess() }
        #if MPI
        let mpi = try MPICommunicator.start()
        if mpi.size == 1 && tasks > 1 {
            throw ParallelError.launch("the launcher started \(tasks) tasks (\(variable)=\(tasks)) but MPI sees 1 process: this ldm's MPI (\(MPICommunicator.libraryVersion)) is not the launcher's; launch with the mpirun of the same MPI, or srun --mpi=pmix")
        }
        return mpi
        #else
        if tasks > 1 {
            throw ParallelError.launch("the launcher started \(tasks) tasks (\(variable)=\(tasks)) but this ldm is built without MPI: each would train the whole model into the same run folder; build the MPI-enabled ldm with `make build-mpi` and launch .build-mpi/release/ldm")
        }
        return SingleProcess()
        #endif
    }

    /// Ends every rank of a multi-rank run after `message` (printed by this rank): MPI_Abort, so
    /// the launcher stops the others instead of leaving them waiting in a collective.
    public static func abort(_ communicator: Communicator, message: String) -> Never {
        aborting = true
        FileHandle.standardError.write(Data((message + "\n").utf8))
        #if MPI
        if let mpi = communicator as? MPICommunicator { mpi.abort(code: 1) }
        #endif
        exit(1)
    }

    /// In a multi-rank run, makes SIGTERM (what mpirun and srun send the surviving ranks when one
    /// fails, and what scancel sends) print one line naming this rank before the process ends.
    public static func explainTermination(rank: Int, size: Int) {
        guard size > 1, terminationSource == nil else { return }
        signal(SIGTERM, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        s.setEventHandler {
            if aborting { exit(1) }   // this rank failed first and said so
            FileHandle.standardError.write(Data("ldm: rank \(rank) of \(size): stopped by the launcher (SIGTERM: another rank failed or the job was cancelled); continue the run with --resume\n".utf8))
            exit(143)
        }
        s.resume()
        terminationSource = s
    }
    nonisolated(unsafe) private static var terminationSource: DispatchSourceSignal?
    nonisolated(unsafe) private static var aborting = false
}

#if MPI
/// MPI_COMM_WORLD as a `Communicator`. Errors return (MPI_ERRORS_RETURN) and become thrown errors.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    nonisolated(unsafe) private static var shared: MPICommunicator?

    private init(rank: Int, size: Int) { self.rank = rank; self.size = size }

    /// Joins MPI (once per process; MPI_Finalize runs at exit).
    public static func start() throws -> MPICommunicator {
        if let shared { return shared }
        var provided: Int32 = 0
        guard MPI_Init_thread(nil, nil, Int32(ldm_mpi_thread_serialized()), &provided) == ldm_mpi_success() else {
            throw ParallelError.launch("MPI_Init_thread failed")
        }
        let world = ldm_mpi_comm_world()
        MPI_Comm_set_errhandler(world, ldm_mpi_errors_return())
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(world, &r)
        MPI_Comm_size(world, &n)
        let c = MPICommunicator(rank: Int(r), size: Int(n))
        shared = c
        atexit { MPI_Finalize() }
        return c
    }

    /// The MPI library's version line ("Open MPI v4.1.4, …").
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: 8192)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        return String(cString: buffer).split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "unknown MPI"
    }

    private func check(_ code: Int32, _ what: String) throws {
        guard code != ldm_mpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(ldm_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw ParallelError.communication("\(what) on rank \(rank) of \(size): \(String(cString: text)) (another rank has probably ended)")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        var offset = 0
        while offset < count {   // MPI counts are Int32
            let n = min(count - offset, Int(Int32.max))
            try check(MPI_Allreduce(ldm_mpi_in_place(), buffer + offset, Int32(n), ldm_mpi_float(), ldm_mpi_sum(), ldm_mpi_comm_world()),
                      "MPI_Allreduce")
            offset += n
        }
    }

    public func barrier() throws { try check(MPI_Barrier(ldm_mpi_comm_world()), "MPI_Barrier") }

    func abort(code: Int32) -> Never {
        MPI_Abort(ldm_mpi_comm_world(), code)
        exit(code)
    }
}
#endif
