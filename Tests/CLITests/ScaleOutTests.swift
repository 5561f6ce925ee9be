// More than one machine: prompt files sharded by flag or by the scheduler's environment (Slurm job
// arrays, Kubernetes Indexed Jobs) write exactly the unsharded run's files, reruns skip finished
// images, sharded evaluations merge; launches that cannot work are refused. With the MPI-enabled
// build (`make build-mpi`) and mpirun present, 2-rank training runs end with the weights of the
// 1-process run of the same global batch.
import Foundation
import XCTest
import LDMIO

final class ScaleOutTests: XCTestCase {
    var tiny: String { fixtures.appendingPathComponent("models/tiny-sd").path }
    /// Launchers' variables cleared, so the tests behave the same when run under a launcher.
    let clean: [String: String?] = ["SLURM_ARRAY_TASK_ID": nil, "JOB_COMPLETION_INDEX": nil, "OMPI_COMM_WORLD_RANK": nil,
                                    "OMPI_COMM_WORLD_SIZE": nil, "PMI_RANK": nil, "PMI_SIZE": nil, "SLURM_STEP_NUM_TASKS": nil,
                                    "LDM_SHARD_COUNT": nil]

    func promptFile(in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent("prompts.txt")
        try "a red circle\n# a comment line\na blue square\n\na green triangle above a red circle\na small yellow square\n"
            .write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func files(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".png") {
            out[name] = try Data(contentsOf: dir.appendingPathComponent(name))
        }
        return out
    }

    func generate(_ prompts: URL, into dir: URL, _ extra: [String], environment: [String: String?] = [:]) throws -> RunResult {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let r = try ldm(["txt2img", "--model", tiny, "--prompts", prompts.path, "--steps", "2", "--seed", "40", "--batch", "2",
                         "--output", dir.appendingPathComponent("img.png").path] + extra,
                        environment: clean.merging(environment) { $1 })
        XCTAssertEqual(r.status, 0, r.stderr)
        return r
    }

    func testShardsWriteTheUnshardedRunsFilesAndRerunsSkipThem() throws {
        let dir = try temporaryFolder()
        let prompts = try promptFile(in: dir)
        try generate(prompts, into: dir.appendingPathComponent("whole"), [])
        let whole = try files(dir.appendingPathComponent("whole"))
        XCTAssertEqual(whole.keys.sorted(), (1...8).map { "img-\($0).png" }.sorted())
        // Prompt k uses seed 40 + k: its images differ from prompt 0's at the same seed.
        let png = try PNGImage.decode(data: Array(whole["img-3.png"]!))
        XCTAssertTrue(png.texts.contains { $0.text.contains("Seed: 41") }, "\(png.texts)")

        // By flag, and by a Slurm job array's variables (ids 5, 6, 7).
        for (name, runs) in [("flag", (0..<3).map { (["--shard", "\($0)/3"], [String: String?]()) }),
                             ("slurm", (0..<3).map { ([String](), ["SLURM_ARRAY_TASK_ID": "\($0 + 5)", "SLURM_ARRAY_TASK_MIN": "5",
                                                                   "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "1"] as [String: String?]) })] {
            let out = dir.appendingPathComponent(name)
            var notes = ""
            for (extra, env) in runs { notes += try generate(prompts, into: out, extra, environment: env).stderr }
            XCTAssertEqual(try files(out), whole, name)
            XCTAssertTrue(notes.contains(name == "flag" ? "shard 2 of 3 (--shard)" : "shard 2 of 3 (Slurm job array)"), notes)
        }

        // A Kubernetes Indexed Job's shard, rerun after a preemption: finished images are skipped,
        // a missing one is drawn again.
        let k8s = dir.appendingPathComponent("k8s")
        try generate(prompts, into: k8s, [], environment: ["JOB_COMPLETION_INDEX": "1", "LDM_SHARD_COUNT": "3"])
        XCTAssertEqual(try files(k8s).keys.sorted(), ["img-3.png", "img-4.png"])
        let before = try FileManager.default.attributesOfItem(atPath: k8s.appendingPathComponent("img-3.png").path)[.modificationDate] as? Date
        let again = try generate(prompts, into: k8s, ["--shard-count", "3"], environment: ["JOB_COMPLETION_INDEX": "1"])
        XCTAssertTrue(again.stderr.contains("already written, skipped"), again.stderr)
        XCTAssertFalse(again.stderr.contains("wrote"), again.stderr)
        let after = try FileManager.default.attributesOfItem(atPath: k8s.appendingPathComponent("img-3.png").path)[.modificationDate] as? Date
        XCTAssertEqual(before, after)
        try FileManager.default.removeItem(at: k8s.appendingPathComponent("img-4.png"))
        let redo = try generate(prompts, into: k8s, ["--shard", "1/3"])
        XCTAssertTrue(redo.stderr.contains("wrote"), redo.stderr)
        XCTAssertEqual(try files(k8s)["img-4.png"], whole["img-4.png"])
    }

    func testShardsThatCannotBeWorkedOutAreRefused() throws {
        let dir = try temporaryFolder()
        let prompts = try promptFile(in: dir)
        for (extra, env, words) in [([String](), ["JOB_COMPLETION_INDEX": "1"] as [String: String?], "shard count"),
                                    (["--shard", "3/3"], [:], "0 ≤ I < N"),
                                    (["--shard", "x"], [:], "I/N"),
                                    ([], ["SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3",
                                          "SLURM_ARRAY_TASK_STEP": "2"], "irregular")] {
            let r = try ldm(["txt2img", "--model", tiny, "--prompts", prompts.path, "--steps", "2", "--output",
                             dir.appendingPathComponent("x.png").path] + extra, environment: clean.merging(env) { $1 })
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(words), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error") || $0.contains("error:") }.count, 1, r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.png").path))
    }

    func testShardedEvaluationMergesIntoTheWholeOne() throws {
        let dir = try temporaryFolder()
        let prompts = try promptFile(in: dir)
        func eval(_ extra: [String], json: String) throws {
            let r = try ldm(["eval", "--model", tiny, "--prompts", prompts.path, "--images", "1", "--steps", "2",
                             "--json", dir.appendingPathComponent(json).path] + extra, environment: clean)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try eval([], json: "whole.json")
        for i in 0..<2 { try eval(["--shard", "\(i)/2"], json: "part\(i).json") }
        let merge = try ldm(["report", "merge", dir.appendingPathComponent("part1.json").path, dir.appendingPathComponent("part0.json").path,
                             "--json", dir.appendingPathComponent("merged.json").path])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        XCTAssertTrue(merge.stdout.contains("merged 2 shards: 4 images"), merge.stdout)
        let whole = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("whole.json"))) as! [String: Any]
        let merged = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("merged.json"))) as! [String: Any]
        for key in ["forms", "overall", "attributes", "images", "seed", "steps", "prompts"] {
            XCTAssertEqual(whole[key] as? NSObject, merged[key] as? NSObject, key)
        }
        let missing = try ldm(["report", "merge", dir.appendingPathComponent("part0.json").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("shards 1 of 2 are missing"), missing.stderr)
        let notShard = try ldm(["report", "merge", dir.appendingPathComponent("whole.json").path])
        XCTAssertTrue(notShard.stderr.contains("is not a shard"), notShard.stderr)
    }

    func testLaunchersAnMPILessBuildCannotServeAreRefused() throws {
        let dir = try temporaryFolder()
        for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"] {
            let r = try ldm(["train", "vae", "--run", dir.appendingPathComponent("run").path, "--steps", "1", "--batch", "2"],
                            environment: clean.merging([variable: "2"]) { $1 })
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("built without MPI") && r.stderr.contains("\(variable)=2"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path), "nothing written")
    }

    // MARK: MPI (needs `make build-mpi` and Open MPI's mpirun)

    var mpiLDM: URL { repositoryRoot.appendingPathComponent(".build-mpi/release/ldm") }

    func mpirun() throws -> URL {
        guard FileManager.default.isExecutableFile(atPath: mpiLDM.path) else {
            throw XCTSkip("no MPI-enabled ldm at .build-mpi/release/ldm (make build-mpi)")
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw XCTSkip("no mpirun on PATH")
    }

    /// Open MPI refuses root without these; --bind-to none lets each rank use every core.
    let mpiEnvironment: [String: String?] = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                                             "OMPI_MCA_rmaps_base_oversubscribe": "1"]

    func tensors(_ url: URL) throws -> [String: [Float]] {
        let file = try SafeTensorsFile(path: url.path)
        return try file.tensors.reduce(into: [:]) { out, t in out[t.name] = try file.floats(t.name) }
    }

    func testTwoMPIRanksTrainTheOneProcessModel() throws {
        let mpirun = try mpirun()
        let dir = try temporaryFolder()
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let vae = ["train", "vae", "--steps", "12", "--batch", "4", "--channels", "16,16,16", "--checkpoint-every", "6"]
        let one = try runProgram(mpiLDM, vae + ["--run", path("vae1"), "--micro-batch", "2", "--export", path("vae-model")],
                                 environment: clean)
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try runProgram(mpirun, ["-np", "2", "--bind-to", "none", mpiLDM.path] + vae + ["--run", path("vae2")],
                                 environment: clean.merging(mpiEnvironment) { $1 })
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stderr.contains("data-parallel over 2 ranks"), two.stderr)
        XCTAssertEqual(two.stderr.components(separatedBy: "train vae 12/12").count, 2, "rank 0 alone reports: \(two.stderr)")

        let unet = ["train", "unet", "--vae", path("vae-model"), "--steps", "12", "--batch", "4", "--channels", "32,32,32",
                    "--layers", "1", "--checkpoint-every", "12"]
        let uOne = try runProgram(mpiLDM, unet + ["--run", path("unet1"), "--micro-batch", "2"], environment: clean)
        XCTAssertEqual(uOne.status, 0, uOne.stderr)
        let uTwo = try runProgram(mpirun, ["-np", "2", "--bind-to", "none", mpiLDM.path] + unet + ["--run", path("unet2")],
                                  environment: clean.merging(mpiEnvironment) { $1 })
        XCTAssertEqual(uTwo.status, 0, uTwo.stderr)

        for (a, b) in [("vae1", "vae2"), ("unet1", "unet2")] {
            for file in ["model.safetensors", "ema.safetensors", "optimizer.safetensors"] {
                let x = try tensors(dir.appendingPathComponent("\(a)/checkpoint-0000012/\(file)"))
                let y = try tensors(dir.appendingPathComponent("\(b)/checkpoint-0000012/\(file)"))
                XCTAssertEqual(x.keys.sorted(), y.keys.sorted())
                for (name, values) in x { XCTAssertEqual(values, y[name], "\(a)/\(file) \(name): bit-identical") }
            }
        }
        // The 2-rank run continues in one process from its checkpoint at step 6 … (any N may resume)
        let resumed = try runProgram(mpiLDM, vae + ["--run", path("vae2"), "--resume", "--steps", "14", "--micro-batch", "2"],
                                     environment: clean)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from step 12"), resumed.stderr)
    }

    func testAnMPIThatIsNotTheLaunchersIsRefusedAndAFailingRankEndsTheJob() throws {
        let mpirun = try mpirun()
        let dir = try temporaryFolder()
        // A launcher said 2 tasks, but this process's MPI sees itself alone.
        let alone = try runProgram(mpiLDM, ["train", "vae", "--run", dir.appendingPathComponent("a").path, "--steps", "1", "--batch", "2"],
                                   environment: clean.merging(["PMI_SIZE": "2"]) { $1 })
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.stderr.contains("MPI sees 1 process"), alone.stderr)
        // A bad configuration fails on every rank: each says so in one line, and the job ends.
        let start = Date()
        let bad = try runProgram(mpirun, ["-np", "2", "--bind-to", "none", mpiLDM.path, "train", "vae", "--run",
                                          dir.appendingPathComponent("b").path, "--steps", "2", "--batch", "1"],
                                 environment: clean.merging(mpiEnvironment) { $1 })
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("smaller than the 2 ranks"), bad.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60, "no hang")
    }

    func testAnMPIRunKilledAtAnyMomentResumesToTheUninterruptedWeights() throws {
        let mpirun = try mpirun()
        let dir = try temporaryFolder()
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let vae = ["train", "vae", "--steps", "10", "--batch", "4", "--channels", "16,16,16", "--checkpoint-every", "1"]
        let environment = clean.merging(mpiEnvironment) { $1 }
        let whole = try runProgram(mpirun, ["-np", "2", "--bind-to", "none", mpiLDM.path] + vae + ["--run", path("whole")],
                                   environment: environment)
        XCTAssertEqual(whole.status, 0, whole.stderr)

        // The same job in its own session, killed (SIGKILL: launcher and ranks, no chance to clean
        // up) once it has written a few checkpoints, possibly in the middle of writing the next.
        let killed = Process()
        killed.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        killed.arguments = [mpirun.path, "-np", "2", "--bind-to", "none", mpiLDM.path] + vae + ["--run", path("killed")]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        killed.environment = env
        killed.standardOutput = FileHandle.nullDevice
        killed.standardError = FileHandle.nullDevice
        try killed.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: path("killed/checkpoint-0000004")) && Date() < deadline && killed.isRunning {
            usleep(20_000)
        }
        kill(-killed.processIdentifier, SIGKILL)
        _ = try? runProgram(URL(fileURLWithPath: "/usr/bin/pkill"), ["-KILL", "-f", path("killed")])
        killed.waitUntilExit()
        let kept = try FileManager.default.contentsOfDirectory(atPath: path("killed")).filter { $0.hasPrefix("checkpoint-") }
        XCTAssertFalse(kept.isEmpty)
        XCTAssertFalse(kept.contains("checkpoint-0000010"), "the job was killed before it finished: \(kept)")

        let resumed = try runProgram(mpirun, ["-np", "2", "--bind-to", "none", mpiLDM.path] + vae + ["--run", path("killed"), "--resume"],
                                     environment: environment)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from step"), resumed.stderr)
        for file in ["model.safetensors", "ema.safetensors", "optimizer.safetensors"] {
            let x = try tensors(dir.appendingPathComponent("whole/checkpoint-0000010/\(file)"))
            let y = try tensors(dir.appendingPathComponent("killed/checkpoint-0000010/\(file)"))
            XCTAssertEqual(x.keys.sorted(), y.keys.sorted())
            for (name, values) in x { XCTAssertEqual(values, y[name], "\(file) \(name): bit-identical") }
        }
    }
}
