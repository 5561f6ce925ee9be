// Memory a generation needs against memory the process may still take: a request the machine cannot
// hold is refused with one clear error before anything large is allocated, instead of the process
// being killed by the kernel (cgroup limit, OOM killer) or aborting on a failed allocation
// (`ulimit -v`).

import Foundation
import LDMDiffusion

public struct InsufficientMemory: Error, CustomStringConvertible {
    public let needed: Int
    public let available: Int
    public let limit: String
    public let what: String
    public var description: String {
        String(format: "%@ needs about %.2f GiB of working memory, but only %.2f GiB is available (%@); ask for a smaller image or batch, or tile the VAE decode",
               what, Double(needed) / 1_073_741_824, Double(available) / 1_073_741_824, limit)
    }
}

public enum MemoryBudget {
    /// Bytes this process may still allocate, and which limit says so: the least of the address-space
    /// limit (`ulimit -v`) minus what is mapped, the cgroup's `memory.max` minus its usage, and the
    /// system's MemAvailable. nil when none can be read.
    public static func available() -> (bytes: Int, limit: String)? {
        var candidates: [(Int, String)] = []
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max, let mapped = statusField("VmSize") {
            candidates.append((max(0, Int(clamping: rl.rlim_cur) - mapped), "ulimit -v \(Int(clamping: rl.rlim_cur) / 1024) KiB"))
        }
        if let max = readNumber("/sys/fs/cgroup/memory.max"), let current = readNumber("/sys/fs/cgroup/memory.current") {
            candidates.append((Swift.max(0, max - current), "cgroup memory.max \(max >> 20) MiB"))
        }
        if let free = meminfoField("MemAvailable") { candidates.append((free, "MemAvailable")) }
        return candidates.min { $0.0 < $1.0 }
    }

    /// A rough upper bound on the working memory (not weights) of generating `batch` images of
    /// width × height: the VAE decoder's full-resolution activations dominate (about 36 bytes per
    /// pixel per channel of its first block: 4.6 KB per pixel for SD's 128, measured 1.2 GiB at
    /// 512² against 1.6 GiB with this bound), then the U-Net's (guided: twice the batch).
    public static func generationBytes(pipeline: StableDiffusionPipeline, width: Int, height: Int, batch: Int,
                                       tiledDecode: Bool) -> Int {
        let pixels = width * height
        let vaeChannels = pipeline.vae?.config.blockOutChannels.first ?? 128
        let decodePixels = tiledDecode ? min(pixels, 512 * 512) : pixels
        let vae = 36 * vaeChannels * decodePixels * (tiledDecode ? 1 : batch)
        let factor = pipeline.space.downsamplingFactor
        let latentPixels = (width / max(1, factor)) * (height / max(1, factor))
        let unetChannels = pipeline.unet.config.blockOutChannels.first ?? 320
        let unet = 2 * batch * latentPixels * unetChannels * 4 * 40
        return vae + unet + (64 << 20)
    }

    /// Throws `InsufficientMemory` when `needed` bytes exceed what is available.
    public static func check(_ needed: Int, what: String) throws {
        guard let (bytes, limit) = available(), needed > bytes else { return }
        throw InsufficientMemory(needed: needed, available: bytes, limit: limit, what: what)
    }

    static func readNumber(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A "Name:   N kB" line of /proc/self/status, in bytes.
    static func statusField(_ name: String) -> Int? { kilobyteField(name, in: "/proc/self/status") }
    static func meminfoField(_ name: String) -> Int? { kilobyteField(name, in: "/proc/meminfo") }

    static func kilobyteField(_ name: String, in path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
        }
        return nil
    }
}
