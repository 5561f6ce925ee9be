// A full disk and a read-only folder: one clear error, nothing half-written left behind, the
// previous checkpoint intact, and training continues once there is room. Real filesystems: small
// tmpfs mounts (skipped where this process may not mount, e.g. without root).
import Foundation
import XCTest
import LDMIO

final class FullDiskTests: XCTestCase {
    private var mounts: [URL] = []

    override func tearDown() {
        for m in mounts.reversed() { _ = try? runProgram(URL(fileURLWithPath: "/bin/umount"), [m.path]) }
        mounts = []
        super.tearDown()
    }

    /// A fresh tmpfs of `megabytes` MiB (read-only when asked).
    func tmpfs(megabytes: Int, readOnly: Bool = false) throws -> URL {
        let dir = try temporaryFolder()
        let r = try runProgram(URL(fileURLWithPath: "/bin/mount"),
                               ["-t", "tmpfs", "-o", "size=\(megabytes)m" + (readOnly ? ",ro" : ""), "tmpfs", dir.path])
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(r.stderr)") }
        mounts.append(dir)
        return dir
    }

    /// Writes a file until the filesystem is full.
    func fill(_ dir: URL) throws -> URL {
        let filler = dir.appendingPathComponent("filler")
        FileManager.default.createFile(atPath: filler.path, contents: nil)
        let h = try FileHandle(forWritingTo: filler)
        defer { try? h.close() }
        for chunk in [1 << 20, 1 << 12, 1 << 9] {
            let data = Data(count: chunk)
            while (try? h.write(contentsOf: data)) != nil {}
        }
        return filler
    }

    func visibleFiles(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    func testTrainingOnAFullDiskStopsCleanlyAndContinuesToTheSameWeights() throws {
        let disk = try tmpfs(megabytes: 24)
        let roomy = try temporaryFolder()
        let vae = ["train", "vae", "--batch", "2", "--channels", "16,16,16", "--checkpoint-every", "2"]
        for base in [roomy, disk] {
            let r = try ldm(vae + ["--run", base.appendingPathComponent("run").path, "--steps", "4"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        // The reference: continued to step 6 with room to spare.
        let reference = try ldm(vae + ["--run", roomy.appendingPathComponent("run").path, "--steps", "6", "--resume"])
        XCTAssertEqual(reference.status, 0, reference.stderr)

        // The same continuation on a full disk fails in one line and leaves the run as it was.
        let run = disk.appendingPathComponent("run")
        let before = try visibleFiles(run)
        let filler = try fill(disk)
        let full = try ldm(vae + ["--run", run.path, "--steps", "6", "--resume"])
        XCTAssertNotEqual(full.status, 0)
        XCTAssertTrue(full.stderr.contains("No space left on device"), full.stderr)
        XCTAssertEqual(full.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, full.stderr)
        XCTAssertEqual(try visibleFiles(run), before, "no new or partial checkpoint")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasSuffix(".tmp") }, [])
        let samples = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("samples").path)
        XCTAssertEqual(samples.filter { $0.hasPrefix(".") }, [], "no temporary sample files")

        // Room again: the run continues from its newest checkpoint to the reference's weights.
        try FileManager.default.removeItem(at: filler)
        let resumed = try ldm(vae + ["--run", run.path, "--steps", "6", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resumed from step 4"), resumed.stderr)
        for file in ["model.safetensors", "ema.safetensors", "optimizer.safetensors"] {
            let a = try SafeTensorsFile(path: run.appendingPathComponent("checkpoint-0000006/\(file)").path)
            let b = try SafeTensorsFile(path: roomy.appendingPathComponent("run/checkpoint-0000006/\(file)").path)
            for t in a.tensors { XCTAssertEqual(try a.floats(t.name), try b.floats(t.name), "\(file) \(t.name)") }
        }
    }

    func testImagesAreWrittenWholeOrNotAtAll() throws {
        let tiny = fixtures.appendingPathComponent("models/tiny-sd").path
        let full = try tmpfs(megabytes: 1)
        _ = try fill(full)
        let readOnly = try tmpfs(megabytes: 1, readOnly: true)
        for (dir, words) in [(full, "No space left on device"), (readOnly, "Read-only file system")] {
            let out = dir.appendingPathComponent("image.png")
            let r = try ldm(["txt2img", "--model", tiny, "--prompt", "a red circle", "--steps", "2", "--output", out.path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(words), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
            XCTAssertEqual(try visibleFiles(dir).filter { $0 != "filler" }, [], "nothing half-written in \(dir.path)")
        }
    }
}
