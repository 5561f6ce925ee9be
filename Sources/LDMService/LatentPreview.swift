// Step previews: a cheap picture of the latents while a job runs (A1111's "Approx cheap" idea),
// without running the VAE decoder each step. For each model, a linear map from a latent pixel's
// channels to RGB is fitted once, by least squares, on smooth random colour images passed through
// the model's own VAE encoder; a preview is that map applied per latent pixel, enlarged by the
// VAE's factor. In pixel space the latents are the image.

import Foundation
import LDMCore
import LDMIO
import LDMModels

public struct LatentPreview: Sendable {
    /// 3 rows of (channels + 1): RGB in [-1, 1] = W · (z, 1).
    public let weights: [Double]
    public let channels: Int
    public let factor: Int

    /// Fits the map for `space` (a few VAE encodes of 128×128 images).
    public static func fit(_ space: LatentSpace) -> LatentPreview {
        let c = space.channels, f = space.downsamplingFactor
        guard !space.isPixelSpace else {
            return LatentPreview(weights: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], channels: 3, factor: 1)
        }
        let size = 128, n = 4
        var random = SwiftRandomSource(seed: 1234)
        // Smooth random colour fields: per image, per channel, a random plane plus two soft blobs.
        let images = Tensor(uninitialized: [n, 3, size, size])
        for i in 0..<n { for ch in 0..<3 {
            let u = random.uniform(count: 9).map { Double($0) * 2 - 1 }
            for y in 0..<size { for x in 0..<size {
                let fx = Double(x) / Double(size), fy = Double(y) / Double(size)
                var v = 0.5 * u[0] + 0.4 * u[1] * fx + 0.4 * u[2] * fy
                v += 0.6 * u[3] * exp(-((fx - abs(u[4])) * (fx - abs(u[4])) + (fy - abs(u[5])) * (fy - abs(u[5]))) * 12)
                v += 0.6 * u[6] * exp(-((fx - abs(u[7])) * (fx - abs(u[7])) + (fy - abs(u[8])) * (fy - abs(u[8]))) * 20)
                images.data[((i * 3 + ch) * size + y) * size + x] = Float(max(-1, min(1, v)))
            } }
        } }
        let z = space.encode(images, &random)
        let h = z.shape[2], w = z.shape[3]
        // Normal equations per colour channel: (XᵀX) β = Xᵀy with X = (z, 1), y = pooled image.
        let k = c + 1
        var xtx = [Double](repeating: 0, count: k * k), xty = [Double](repeating: 0, count: k * 3)
        for i in 0..<n { for y in 0..<h { for x in 0..<w {
            var row = [Double](repeating: 1, count: k)
            for ch in 0..<c { row[ch] = Double(z.data[((i * c + ch) * h + y) * w + x]) }
            var target = [0.0, 0.0, 0.0]
            for ch in 0..<3 {
                var s = 0.0
                for dy in 0..<f { for dx in 0..<f { s += Double(images.data[((i * 3 + ch) * size + y * f + dy) * size + x * f + dx]) } }
                target[ch] = s / Double(f * f)
            }
            for a in 0..<k {
                for b in 0..<k { xtx[a * k + b] += row[a] * row[b] }
                for ch in 0..<3 { xty[a * 3 + ch] += row[a] * target[ch] }
            }
        } } }
        for a in 0..<k { xtx[a * k + a] += 1e-3 }   // a little ridge keeps it solvable
        var weights = [Double](repeating: 0, count: 3 * k)
        for ch in 0..<3 {
            let beta = solve(xtx, (0..<k).map { xty[$0 * 3 + ch] }, k)
            for a in 0..<k { weights[ch * k + a] = beta[a] }
        }
        return LatentPreview(weights: weights, channels: c, factor: f)
    }

    /// Gaussian elimination with partial pivoting on a small k×k system.
    static func solve(_ matrix: [Double], _ rhs: [Double], _ k: Int) -> [Double] {
        var a = matrix, b = rhs
        for col in 0..<k {
            let pivot = (col..<k).max { abs(a[$0 * k + col]) < abs(a[$1 * k + col]) }!
            if pivot != col {
                for j in 0..<k { a.swapAt(col * k + j, pivot * k + j) }
                b.swapAt(col, pivot)
            }
            let p = a[col * k + col]
            guard abs(p) > 1e-12 else { continue }
            for r in (col + 1)..<k {
                let m = a[r * k + col] / p
                for j in col..<k { a[r * k + j] -= m * a[col * k + j] }
                b[r] -= m * b[col]
            }
        }
        var x = [Double](repeating: 0, count: k)
        for r in stride(from: k - 1, through: 0, by: -1) {
            var s = b[r]
            for j in (r + 1)..<k { s -= a[r * k + j] * x[j] }
            x[r] = abs(a[r * k + r]) > 1e-12 ? s / a[r * k + r] : 0
        }
        return x
    }

    /// The preview of image `index` of latents [B, C, h, w], enlarged to the output size.
    public func image(_ latents: Tensor, index: Int = 0) -> PNGImage {
        let c = latents.shape[1], h = latents.shape[2], w = latents.shape[3], k = channels + 1
        let width = w * factor, height = h * factor
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<h { for x in 0..<w {
            var rgb = [UInt8](repeating: 0, count: 3)
            for ch in 0..<3 {
                var v = weights[ch * k + channels]
                for j in 0..<min(c, channels) { v += weights[ch * k + j] * Double(latents.data[((index * c + j) * h + y) * w + x]) }
                rgb[ch] = UInt8(max(0, min(255, ((v + 1) * 127.5).rounded())))
            }
            for dy in 0..<factor { for dx in 0..<factor {
                let p = ((y * factor + dy) * width + x * factor + dx) * 3
                pixels[p] = rgb[0]; pixels[p + 1] = rgb[1]; pixels[p + 2] = rgb[2]
            } }
        } }
        return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
    }
}
