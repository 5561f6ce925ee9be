// The only file that talks to OpenBLAS. Everything heavy — linear layers, convolutions, attention —
// ends in `gemm`, which is cblas_sgemm on row-major data.

import COpenBLAS

/// Row-major single-precision matrix products through OpenBLAS.
public enum BLAS {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major with leading dimensions
    /// `lda`, `ldb`, `ldc` (elements between rows).
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
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

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

    /// Runs `body` with OpenBLAS on one thread when `enabled` — for work that is itself split over
    /// the cores, so each product runs where it is called instead of waking OpenBLAS' own threads.
    public static func singleThreaded<T>(_ enabled: Bool = true, _ body: () throws -> T) rethrows -> T {
        let saved = enabled ? threadCount : 0
        if enabled && saved > 1 { threadCount = 1 }
        defer { if enabled && saved > 1 { threadCount = saved } }
        return try body()
    }

    /// Threads OpenBLAS uses.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
