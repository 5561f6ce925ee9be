// Shape ops: nearest upsampling, concatenation and splitting, transposes between NCHW and
// token layouts, forward and backward side by side.

/// Nearest-neighbour 2× upsampling of [N, C, H, W] → [N, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "upsample") }
    let nc = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let y = Tensor(uninitialized: [x.shape[0], x.shape[1], 2 * h, 2 * w])
    let px = x.data, py = y.data
    Parallel.forEach(nc, cost: 4 * h * w) { i in
        let src = px + i * h * w, dst = py + i * 4 * h * w
        for yy in 0..<h {
            let row = dst + 2 * yy * 2 * w
            for xx in 0..<w { let v = src[yy * w + xx]; row[2 * xx] = v; row[2 * xx + 1] = v }
            (row + 2 * w).update(from: row, count: 2 * w)
        }
    }
    return y
}

/// Backward of `upsampleNearest2x`: each input pixel receives the sum of its four copies.
public func upsampleNearest2xBackward(_ dy: Tensor) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "upsample backward") }
    let nc = dy.shape[0] * dy.shape[1], h = dy.shape[2] / 2, w = dy.shape[3] / 2
    let dx = Tensor(uninitialized: [dy.shape[0], dy.shape[1], h, w])
    let pd = dy.data, po = dx.data
    for i in 0..<nc {
        for yy in 0..<h {
            for xx in 0..<w {
                let base = i * 4 * h * w + 2 * yy * 2 * w + 2 * xx
                po[i * h * w + yy * w + xx] = pd[base] + pd[base + 1] + pd[base + 2 * w] + pd[base + 2 * w + 1]
            }
        }
    }
    return dx
}

/// Concatenates tensors along dimension `dim` (all other dimensions equal).
public func concat(_ parts: [Tensor], dim: Int) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "concat") }
    precondition(!parts.isEmpty, "concat of nothing")
    let first = parts[0].shape
    var shape = first
    shape[dim] = parts.reduce(0) { $0 + $1.shape[dim] }
    for p in parts {
        precondition(p.rank == first.count && (0..<first.count).allSatisfy { $0 == dim || p.shape[$0] == first[$0] },
                     "concat: shapes \(parts.map(\.shape)) along \(dim)")
    }
    let outer = first[..<dim].reduce(1, *)
    let inner = first[(dim + 1)...].reduce(1, *)
    let out = Tensor(uninitialized: shape)
    var off = 0
    let rowOut = shape[dim] * inner
    for p in parts {
        let block = p.shape[dim] * inner
        for o in 0..<outer { (out.data + o * rowOut + off).update(from: p.data + o * block, count: block) }
        off += block
    }
    return out
}

/// Splits along `dim` into pieces of the given sizes (the backward of `concat`).
public func split(_ x: Tensor, sizes: [Int], dim: Int) -> [Tensor] {
    precondition(sizes.reduce(0, +) == x.shape[dim], "split \(x.shape) into \(sizes) along \(dim)")
    let outer = x.shape[..<dim].reduce(1, *)
    let inner = x.shape[(dim + 1)...].reduce(1, *)
    let rowIn = x.shape[dim] * inner
    var off = 0
    return sizes.map { size in
        var s = x.shape
        s[dim] = size
        let t = Tensor(uninitialized: s)
        let block = size * inner
        for o in 0..<outer { (t.data + o * block).update(from: x.data + o * rowIn + off, count: block) }
        off += block
        return t
    }
}

/// [N, C, H, W] → [N, H·W, C] (image to tokens).
public func imageToTokens(_ x: Tensor) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "image to tokens") }
    let n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3]
    let y = Tensor(uninitialized: [n, hw, c])
    transpose2D(x.data, y.data, batches: n, rows: c, cols: hw)
    return y
}

/// [N, H·W, C] → [N, C, H, W] (tokens to image).
public func tokensToImage(_ x: Tensor, height: Int, width: Int) -> Tensor {
    let profileToken = OpProfile.start(); defer { OpProfile.stop(profileToken, "tokens to image") }
    let n = x.shape[0], hw = x.shape[1], c = x.shape[2]
    precondition(hw == height * width, "tokensToImage: \(x.shape) to \(height)×\(width)")
    let y = Tensor(uninitialized: [n, c, height, width])
    transpose2D(x.data, y.data, batches: n, rows: hw, cols: c)
    return y
}

/// dst[b][j][i] = src[b][i][j] for `batches` matrices of rows × cols, in cache-friendly tiles.
func transpose2D(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, batches: Int, rows: Int, cols: Int) {
    let tile = 32
    for b in 0..<batches {
        let s = src + b * rows * cols, d = dst + b * rows * cols
        Parallel.forEach((rows + tile - 1) / tile, cost: tile * cols) { ti in
            let r0 = ti * tile, r1 = min(rows, r0 + tile)
            var c0 = 0
            while c0 < cols {
                let c1 = min(cols, c0 + tile)
                for r in r0..<r1 { for c in c0..<c1 { d[c * rows + r] = s[r * cols + c] } }
                c0 = c1
            }
        }
    }
}

/// The window `rows` × `columns` of x [N, C, H, W], as a new tensor [N, C, rows.count, columns.count].
public func crop(_ x: Tensor, rows: Range<Int>, columns: Range<Int>) -> Tensor {
    precondition(x.rank == 4, "crop needs [N, C, H, W], got \(x.shape)")
    let nc = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    precondition(rows.lowerBound >= 0 && rows.upperBound <= h && columns.lowerBound >= 0 && columns.upperBound <= w,
                 "crop: window \(rows) × \(columns) outside \(h) × \(w)")
    let oh = rows.count, ow = columns.count
    let y = Tensor(uninitialized: [x.shape[0], x.shape[1], oh, ow])
    let px = x.data, py = y.data
    Parallel.forEach(nc, cost: oh * ow) { i in
        for r in 0..<oh {
            (py + (i * oh + r) * ow).update(from: px + (i * h + rows.lowerBound + r) * w + columns.lowerBound, count: ow)
        }
    }
    return y
}

/// Writes the window `rows` × `columns` of src [N, C, h, w] into dst [N, C, H, W] with its top-left
/// corner at (`top`, `left`).
public func paste(_ src: Tensor, rows: Range<Int>, columns: Range<Int>, into dst: Tensor, top: Int, left: Int) {
    precondition(src.rank == 4 && dst.rank == 4 && src.shape[0] == dst.shape[0] && src.shape[1] == dst.shape[1],
                 "paste of \(src.shape) into \(dst.shape)")
    let nc = src.shape[0] * src.shape[1], h = src.shape[2], w = src.shape[3], oh = dst.shape[2], ow = dst.shape[3]
    precondition(rows.lowerBound >= 0 && rows.upperBound <= h && columns.lowerBound >= 0 && columns.upperBound <= w
                     && top >= 0 && top + rows.count <= oh && left >= 0 && left + columns.count <= ow,
                 "paste: window \(rows) × \(columns) at (\(top), \(left)) does not fit")
    let ps = src.data, pd = dst.data, n = columns.count
    Parallel.forEach(nc, cost: rows.count * n) { i in
        for r in 0..<rows.count {
            (pd + (i * oh + top + r) * ow + left).update(from: ps + (i * h + rows.lowerBound + r) * w + columns.lowerBound, count: n)
        }
    }
}

/// Zero-pads [N, C, H, W] by `right` columns and `bottom` rows (the VAE's asymmetric downsampling pad).
public func padRightBottom(_ x: Tensor, right: Int, bottom: Int) -> Tensor {
    let nc = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let oh = h + bottom, ow = w + right
    let y = Tensor(zeros: [x.shape[0], x.shape[1], oh, ow])
    let px = x.data, py = y.data
    Parallel.forEach(nc, cost: oh * ow) { i in
        for r in 0..<h { (py + i * oh * ow + r * ow).update(from: px + i * h * w + r * w, count: w) }
    }
    return y
}

/// Backward of `padRightBottom`: crops the gradient back to [N, C, H, W].
public func cropRightBottom(_ dy: Tensor, right: Int, bottom: Int) -> Tensor {
    let nc = dy.shape[0] * dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    let h = oh - bottom, w = ow - right
    let x = Tensor(uninitialized: [dy.shape[0], dy.shape[1], h, w])
    for i in 0..<nc {
        for r in 0..<h { (x.data + i * h * w + r * w).update(from: dy.data + i * oh * ow + r * ow, count: w) }
    }
    return x
}
