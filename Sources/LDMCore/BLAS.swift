// The only file that talks to OpenBLAS. Everything heavy — linear layers, convolutions, attention —
// ends in `gemm`, which is cblas_sgemm on row-major data, or, while products run in bf16
// (`ComputePrecision`), oneDNN's bf16 matmul (OneDNN.swift).

import COpenBLAS

/// Row-major single-precision matrix products through OpenBLAS.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major with leading dimensions
    /// `lda`, `ldb`, `ldc` (elements between rows).
    ///
    /// Large products are split into column (or row) bands, one per core, each computed by
    /// single-threaded OpenBLAS on the threads of `Parallel`; inside a parallel region (work that is
    /// already split over the cores) a product runs where it is called. OpenBLAS' own threads are
    /// never woken, so they do not spin waiting for work while the rest of the program runs.
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            // Nothing to add: C = beta·C.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if ComputePrecision.current == .bf16 && OneDNN.takesBF16(m: m, n: n, k: k, ldc: ldc) {
            OneDNN.gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        _ = openBLASOnOneThread
        let parts = bands(m: m, n: n, k: k)
        if parts <= 1 {
            sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        if n >= m {
            // Column bands: B's columns j0..<j1 and C's.
            let width = (n / parts + bandAlignment - 1) / bandAlignment * bandAlignment
            Parallel.forEach(parts, cost: Parallel.minimumParallelWork) { p in
                let j0 = p * width, j1 = min(n, j0 + width)
                if j0 < j1 {
                    sgemm(transA, transB, m, j1 - j0, k, alpha, a, lda, transB ? b + j0 * ldb : b + j0, ldb,
                          beta, c + j0, ldc)
                }
            }
        } else {
            // Row bands: A's rows i0..<i1 and C's.
            let height = (m / parts + bandAlignment - 1) / bandAlignment * bandAlignment
            Parallel.forEach(parts, cost: Parallel.minimumParallelWork) { p in
                let i0 = p * height, i1 = min(m, i0 + height)
                if i0 < i1 {
                    sgemm(transA, transB, i1 - i0, n, k, alpha, transA ? a + i0 : a + i0 * lda, lda, b, ldb,
                          beta, c + i0 * ldc, ldc)
                }
            }
        }
    }

    /// Products of fewer multiply-adds than this run on one thread (about 10 µs of work).
    static let splitThreshold = 1 << 19
    /// Band edges fall on multiples of this (the kernels' register-block sizes divide it).
    static let bandAlignment = 16

    /// How many bands to split a product into: one per core when it is large enough and not already
    /// inside parallel work, else 1.
    static func bands(m: Int, n: Int, k: Int) -> Int {
        let workers = Parallel.threadCount
        if workers <= 1 || Parallel.isInsideParallelWork || m * n * k < splitThreshold { return 1 }
        let longest = max(m, n)
        return min(workers, longest / bandAlignment)
    }

    @inline(__always)
    static func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// OpenBLAS runs every call on the calling thread; `gemm` does the splitting.
    static let openBLASOnOneThread: Void = openblas_set_num_threads(1)

    /// The OpenBLAS kernel family in use (e.g. "Haswell", "SkylakeX"), as `openblas_get_corename` reports.
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// OpenBLAS' build configuration string.
    public static var configuration: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    /// Threads a large product is split over (the threads of `Parallel`).
    public static var threadCount: Int { Parallel.threadCount }
}
