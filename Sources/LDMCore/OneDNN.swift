// The bfloat16 product path: oneDNN's matmul on bf16 operands with float32 accumulation and
// output. `BLAS.gemm` hands a product here while `ComputePrecision.current` is `.bf16`; this file
// and BLAS.swift are the only ones that talk to a product library.
//
// Each call rounds its operands to bf16 (round to nearest even) into contiguous buffers, then runs
// one single-threaded oneDNN matmul per band of the output on the program's own worker threads, as
// the OpenBLAS path does (oneDNN's OpenMP threads are kept to one per call, so none spin between
// products). Primitives are made once per shape and kept.

import CDNNL
import Foundation

/// The arithmetic the networks' products run in.
public enum Precision: String, Sendable, CaseIterable {
    /// float32 everywhere: the parity reference.
    case fp32
    /// bfloat16 products with float32 accumulation; norms, softmax statistics, the scheduler and
    /// everything outside the products stay float32.
    case bf16
}

/// The precision products run in now, process-wide. Set once by a command before it runs the
/// networks; training always runs in fp32.
public enum ComputePrecision {
    nonisolated(unsafe) public static var current: Precision = .fp32

    /// Whether this CPU computes bf16 products natively (AVX512-BF16 or AMX), as oneDNN sees it.
    public static var bf16Supported: Bool { OneDNN.hasBF16 }

    /// Resolves a request of `auto`, `fp32` or `bf16`: `auto` is bf16 where the CPU has it and
    /// fp32 elsewhere; bf16 on a CPU without it falls back to fp32. The second value is the one line
    /// to tell the user (nil when nothing needs saying).
    public static func resolve(_ request: String) throws -> (Precision, String?) {
        switch request.lowercased() {
        case "fp32", "f32", "float32": return (.fp32, nil)
        case "bf16", "bfloat16":
            if bf16Supported { return (.bf16, nil) }
            return (.fp32, "precision bf16: this CPU has no AVX512-BF16 or AMX; computing in fp32")
        case "auto":
            if bf16Supported { return (.bf16, "precision auto: bf16 (\(OneDNN.isaName))") }
            return (.fp32, "precision auto: fp32 (this CPU has no AVX512-BF16 or AMX)")
        default:
            throw PrecisionError(message: "unknown precision \(request): use auto, fp32 or bf16")
        }
    }

    /// Runs `body` with products in `precision`, then restores the previous setting.
    public static func with<T>(_ precision: Precision, _ body: () throws -> T) rethrows -> T {
        let saved = current
        current = precision
        defer { current = saved }
        return try body()
    }
}

public struct PrecisionError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// oneDNN through its C API.
public enum OneDNN {
    /// The CPU engine, made once.
    nonisolated(unsafe) static let engine: dnnl_engine_t? = {
        var e: dnnl_engine_t?
        return dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success ? e : nil
    }()

    /// The instruction set oneDNN's kernels use on this CPU.
    public static var isaName: String {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        if isa & dnnl_cpu_isa_avx512_core_amx.rawValue == dnnl_cpu_isa_avx512_core_amx.rawValue { return "avx512_core_amx" }
        if isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue { return "avx512_core_bf16" }
        if isa & dnnl_cpu_isa_avx512_core.rawValue == dnnl_cpu_isa_avx512_core.rawValue { return "avx512_core" }
        if isa & dnnl_cpu_isa_avx2.rawValue == dnnl_cpu_isa_avx2.rawValue { return "avx2" }
        return "sse41"
    }

    /// AVX512-BF16 or AMX, and a working engine.
    public static let hasBF16: Bool = {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        return engine != nil && isa & dnnl_cpu_isa_avx512_core_bf16.rawValue == dnnl_cpu_isa_avx512_core_bf16.rawValue
    }()

    /// oneDNN's version, e.g. "2.6.3".
    public static var version: String {
        guard let v = dnnl_version() else { return "unknown" }
        return "\(v.pointee.major).\(v.pointee.minor).\(v.pointee.patch)"
    }

    /// The implementation oneDNN chose for the last matmul made (e.g. "brg:avx512_core_bf16").
    nonisolated(unsafe) public private(set) static var lastImplementation = "none"

    /// OpenMP's thread-count setter (libgomp comes in with libdnnl), found at run time.
    private typealias SetThreads = @convention(c) (CInt) -> Void
    nonisolated(unsafe) private static let setOMPThreads: SetThreads? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "omp_set_num_threads") else { return nil }
        return unsafeBitCast(symbol, to: SetThreads.self)
    }()

    // MARK: - Primitives, one per shape

    private struct Key: Hashable {
        var m, n, k, ldb, ldc: Int
        var transB: Bool
        var alpha, beta: Float
    }

    private final class Primitive: @unchecked Sendable {
        let primitive: dnnl_primitive_t
        var a = dnnl_memory_desc_t(), b = dnnl_memory_desc_t(), c = dnnl_memory_desc_t(), scratch = dnnl_memory_desc_t()
        var scratchBytes = 0
        init(primitive: dnnl_primitive_t) { self.primitive = primitive }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var primitives: [Key: Primitive] = [:]

    /// The descriptor of a [rows×cols] matrix of `type` whose elements (i, j) lie at i·rowStride + j·colStride.
    static func matrix(_ rows: Int, _ cols: Int, _ type: dnnl_data_type_t, rowStride: Int, colStride: Int = 1,
                       _ what: String) -> dnnl_memory_desc_t {
        var desc = dnnl_memory_desc_t()
        var d: dnnl_dims_t = (Int64(rows), Int64(cols), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var s: dnnl_dims_t = (Int64(rowStride), Int64(colStride), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let status = withUnsafePointer(to: &d) { dp in withUnsafePointer(to: &s) { sp in
            dnnl_memory_desc_init_by_strides(&desc, 2, dp.withMemoryRebound(to: Int64.self, capacity: 12) { $0 }, type,
                                             sp.withMemoryRebound(to: Int64.self, capacity: 12) { $0 }) } }
        check(status, what + " descriptor")
        return desc
    }

    private static func check(_ status: dnnl_status_t, _ what: String) {
        if status != dnnl_success { fatalError("oneDNN \(what) failed (status \(status.rawValue))") }
    }

    /// C[m×n] (row stride ldc, f32) = alpha · A[m×k] · B + beta · C, with A bf16 row-major contiguous
    /// and B bf16 [k×n] with row stride ldb, or, when `transB`, B stored as [n×k] with row stride ldb.
    private static func primitive(_ key: Key) -> Primitive {
        lock.lock()
        defer { lock.unlock() }
        if let p = primitives[key] { return p }
        guard let engine else { fatalError("oneDNN has no CPU engine") }
        var a = matrix(key.m, key.k, dnnl_bf16, rowStride: key.k, "A")
        var b = key.transB ? matrix(key.k, key.n, dnnl_bf16, rowStride: 1, colStride: key.ldb, "B")
                           : matrix(key.k, key.n, dnnl_bf16, rowStride: key.ldb, "B")
        var c = matrix(key.m, key.n, dnnl_f32, rowStride: key.ldc, "C")
        var desc = dnnl_matmul_desc_t()
        check(dnnl_matmul_desc_init(&desc, &a, &b, nil, &c), "matmul descriptor")
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attributes")
        defer { dnnl_primitive_attr_destroy(attr) }
        // The primitive's scratch memory comes from our pool: left to oneDNN, every call maps and
        // unmaps fresh pages for it.
        check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode")
        if key.alpha != 1 {
            var alpha = key.alpha
            check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "output scale")
        }
        if key.beta != 0 {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "post-ops")
            check(dnnl_post_ops_append_sum(ops, key.beta), "sum post-op")
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "post-ops")
            dnnl_post_ops_destroy(ops)
        }
        var pd: dnnl_primitive_desc_t?
        check(withUnsafePointer(to: &desc) { dnnl_primitive_desc_create(&pd, UnsafeRawPointer($0), attr, engine, nil) },
              "matmul primitive descriptor")
        defer { dnnl_primitive_desc_destroy(pd) }
        var info: UnsafePointer<CChar>?
        if dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &info) == dnnl_success, let info {
            lastImplementation = String(cString: info)
        }
        var prim: dnnl_primitive_t?
        check(dnnl_primitive_create(&prim, pd), "matmul primitive")
        let p = Primitive(primitive: prim!)
        p.a = a; p.b = b; p.c = c
        if let md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) {
            p.scratch = md.pointee
            p.scratchBytes = dnnl_memory_desc_get_size(md)
        }
        primitives[key] = p
        return p
    }

    // MARK: - fp32 → bf16 conversions (oneDNN's reorder: the CPU's own conversion instruction)

    private struct ReorderKey: Hashable { var rows, cols, ld: Int; var transposed: Bool }
    nonisolated(unsafe) private static var reorders: [ReorderKey: Primitive] = [:]

    /// A reorder from an fp32 [rows×cols] matrix (row stride ld, or, transposed, stored [cols×rows]
    /// with row stride ld) to a contiguous bf16 [rows×cols] one.
    private static func reorder(_ key: ReorderKey) -> Primitive {
        lock.lock()
        defer { lock.unlock() }
        if let p = reorders[key] { return p }
        var src = key.transposed ? matrix(key.rows, key.cols, dnnl_f32, rowStride: 1, colStride: key.ld, "reorder source")
                                 : matrix(key.rows, key.cols, dnnl_f32, rowStride: key.ld, "reorder source")
        var dst = matrix(key.rows, key.cols, dnnl_bf16, rowStride: key.cols, "reorder destination")
        var pd: dnnl_primitive_desc_t?
        check(dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, nil), "reorder primitive descriptor")
        defer { dnnl_primitive_desc_destroy(pd) }
        var prim: dnnl_primitive_t?
        check(dnnl_primitive_create(&prim, pd), "reorder primitive")
        let p = Primitive(primitive: prim!)
        p.a = src; p.c = dst
        reorders[key] = p
        return p
    }

    /// Rounds an fp32 [rows×cols] matrix (row stride ld; `transposed`: stored [cols×rows]) into a
    /// contiguous bf16 [rows×cols] one, in bands of rows over the worker threads.
    static func convert(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, transposed: Bool,
                        into dst: UnsafeMutablePointer<UInt16>) {
        let band = max(16, (rows + 4 * Parallel.threadCount - 1) / (4 * Parallel.threadCount))
        let bands = (rows + band - 1) / band
        Parallel.forEach(bands, cost: band * cols) { b in
            let r0 = b * band, r1 = min(rows, r0 + band)
            let p = reorder(ReorderKey(rows: r1 - r0, cols: cols, ld: ld, transposed: transposed))
            let from = transposed ? src + r0 : src + r0 * ld
            execute(p, [(DNNL_ARG_FROM, UnsafeMutableRawPointer(mutating: from), p.a), (DNNL_ARG_TO, UnsafeMutableRawPointer(dst + r0 * cols), p.c)])
        }
    }

    /// Runs a primitive on the calling thread with the given arguments (pointer and descriptor each).
    private static func execute(_ p: Primitive, _ arguments: [(CInt, UnsafeMutableRawPointer, dnnl_memory_desc_t)]) {
        setOMPThreads?(1)
        var stream: dnnl_stream_t?
        check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "stream")
        defer { dnnl_stream_destroy(stream) }
        var memories: [dnnl_memory_t?] = []
        defer { for m in memories { dnnl_memory_destroy(m) } }
        var args: [dnnl_exec_arg_t] = []
        for (arg, pointer, desc) in arguments {
            var m: dnnl_memory_t?
            var d = desc
            check(dnnl_memory_create(&m, &d, engine, pointer), "memory")
            memories.append(m)
            args.append(dnnl_exec_arg_t(arg: arg, memory: m))
        }
        check(dnnl_primitive_execute(p.primitive, stream, CInt(args.count), &args), "execute")
        check(dnnl_stream_wait(stream), "stream wait")
    }

    /// Runs one matmul on the calling thread, its scratch memory from the pool.
    private static func run(_ p: Primitive, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutableRawPointer) {
        var arguments = [(DNNL_ARG_SRC, UnsafeMutableRawPointer(mutating: a), p.a), (DNNL_ARG_WEIGHTS, UnsafeMutableRawPointer(mutating: b), p.b),
                         (DNNL_ARG_DST, c, p.c)]
        guard p.scratchBytes > 0 else { return execute(p, arguments) }
        let scratch = ScratchPool.take(p.scratchBytes)
        defer { ScratchPool.give(scratch) }
        arguments.append((DNNL_ARG_SCRATCHPAD, scratch.pointer, p.scratch))
        execute(p, arguments)
    }

    // MARK: - The bf16 product

    /// Whether a product runs in bf16: oneDNN's bf16 kernels (brgemm) want a dense output and an
    /// inner dimension of some length. Attention's score products (k = the head width, 40–160) and
    /// products into strided outputs measured slower in bf16 than OpenBLAS' fp32 (SD1.x U-Net,
    /// AVX512-BF16: 256×40×4096 at 102 GFLOP/s; strided outputs fall to oneDNN's older jit gemm), so
    /// they stay fp32.
    @inline(__always)
    static func takesBF16(m: Int, n: Int, k: Int, ldc: Int) -> Bool {
        hasBF16 && k >= 192 && ldc == n
    }

    /// `BLAS.gemm`'s contract, computed with bf16 operands and f32 accumulation.
    static func gemmBF16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                         a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        // A as bf16 [m×k] row-major; B as bf16 in its own orientation, rows contiguous.
        let bRows = transB ? n : k, bCols = transB ? k : n
        let aBits = ScratchPool.take(m * k * 2), bBits = ScratchPool.take(bRows * bCols * 2)
        defer { ScratchPool.give(aBits); ScratchPool.give(bBits) }
        let pa = aBits.pointer.assumingMemoryBound(to: UInt16.self)
        let pb = bBits.pointer.assumingMemoryBound(to: UInt16.self)
        convert(a, rows: m, cols: k, ld: lda, transposed: transA, into: pa)
        convert(b, rows: bRows, cols: bCols, ld: ldb, transposed: false, into: pb)
        productBF16(transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa, b: pb, bCols: bCols, beta: beta, c: c, ldc: ldc)
    }

    /// C[m×n] = alpha · A · op(B) + beta · C from operands already in bf16: A [m×k] row-major and
    /// contiguous, B [k×n] (or [n×k] with `transB`) with rows of `bCols` elements; C dense (ldc = n
    /// for the kernels `takesBF16` admits). Split into bands over the cores as `gemmBF16` splits.
    static func productBF16(transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1, a pa: UnsafePointer<UInt16>,
                            b pb: UnsafePointer<UInt16>, bCols: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let parts = BLAS.bands(m: m, n: n, k: k)
        if parts <= 1 {
            run(primitive(Key(m: m, n: n, k: k, ldb: bCols, ldc: ldc, transB: transB, alpha: alpha, beta: beta)),
                a: pa, b: pb, c: c)
            return
        }
        // Row bands keep every band's output dense (which oneDNN's bf16 kernels need); column bands
        // only when there are too few rows.
        if m < parts * 64 {
            let width = (n / parts + BLAS.bandAlignment - 1) / BLAS.bandAlignment * BLAS.bandAlignment
            Parallel.forEach(parts, cost: Parallel.minimumParallelWork) { p in
                let j0 = p * width, j1 = min(n, j0 + width)
                guard j0 < j1 else { return }
                let prim = primitive(Key(m: m, n: j1 - j0, k: k, ldb: bCols, ldc: ldc, transB: transB, alpha: alpha, beta: beta))
                run(prim, a: pa, b: transB ? pb + j0 * bCols : pb + j0, c: c + j0)
            }
        } else {
            let height = (m / parts + BLAS.bandAlignment - 1) / BLAS.bandAlignment * BLAS.bandAlignment
            Parallel.forEach(parts, cost: Parallel.minimumParallelWork) { p in
                let i0 = p * height, i1 = min(m, i0 + height)
                guard i0 < i1 else { return }
                let prim = primitive(Key(m: i1 - i0, n: n, k: k, ldb: bCols, ldc: ldc, transB: transB, alpha: alpha, beta: beta))
                run(prim, a: pa + i0 * k, b: pb, c: c + i0 * ldc)
            }
        }
    }
}

/// Buffers for the bf16 operands, kept and reused: products come in many sizes, and fresh pages
/// for each (mapped, faulted in, unmapped) cost more system time than the products saved.
enum ScratchPool {
    struct Buffer { let pointer: UnsafeMutableRawPointer; let capacity: Int }
    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [Buffer] = []

    /// A buffer of at least `bytes` bytes: the smallest free one that fits, else a new one.
    static func take(_ bytes: Int) -> Buffer {
        lock.lock()
        if let i = free.indices.filter({ free[$0].capacity >= bytes }).min(by: { free[$0].capacity < free[$1].capacity }) {
            let b = free.remove(at: i)
            lock.unlock()
            return b
        }
        lock.unlock()
        let capacity = max(1 << 16, (bytes + (1 << 20) - 1) & ~((1 << 20) - 1))
        guard let p = aligned_alloc(64, capacity) else { fatalError("out of memory allocating \(capacity) bytes") }
        return Buffer(pointer: p, capacity: capacity)
    }

    /// Returns a buffer for reuse.
    static func give(_ buffer: Buffer) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}
