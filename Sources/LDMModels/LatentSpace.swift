// The space a diffusion model works in: the scaled latents of a frozen VAE (latent diffusion,
// Rombach et al. 2022), or the pixels themselves (pixel-space diffusion, as DDPM and the LDM paper's
// f = 1 baselines). Trainers and pipelines go through it to encode images and decode samples, so the
// same code runs both.
//
//   VAE:     z = s · (μ + σ ε),  (μ, log σ²) = E(x),  ε ~ N(0, I);    x̂ = D(z / s)
//   pixels:  z = x;                                                    x̂ = z
//
// Images are [N, 3, H, W] in [-1, 1] either way; s is the VAE's `scaling_factor`.

import Foundation
import LDMCore
import LDMIO

/// Where the diffusion model's samples live.
public enum LatentSpace {
    /// The scaled latents of a (frozen) VAE.
    case vae(AutoencoderKL)
    /// The RGB image itself: 3 channels at full resolution, in [-1, 1].
    case pixels

    /// Loads the VAE in `folder` (config.json + weights).
    public init(vaeFolder folder: URL) throws {
        let vae = try AutoencoderKL(config: loadConfig(VAEConfig.self, from: folder.appendingPathComponent("config.json")))
        try vae.load(folder: folder, component: "vae")
        self = .vae(vae)
    }

    /// The VAE, or nil in pixel space.
    public var vae: AutoencoderKL? {
        if case let .vae(v) = self { return v }
        return nil
    }

    /// Whether the samples are the pixels themselves.
    public var isPixelSpace: Bool { vae == nil }

    /// Channels of a sample: the VAE's latent channels, or 3 (RGB).
    public var channels: Int { vae?.config.latentChannels ?? 3 }

    /// Image pixels per sample pixel: the VAE's f, or 1.
    public var downsamplingFactor: Int { vae?.config.downsamplingFactor ?? 1 }

    /// z = s · (μ + σ ε): a posterior sample (one normal draw of the latent's shape from `random`)
    /// times the scaling factor; in pixel space a copy of the images, and nothing drawn.
    public func encode<R: RandomSource>(_ images: Tensor, _ random: inout R) -> Tensor {
        guard let vae else { return images.copy() }
        let z = vae.encode(images).sample(&random)
        scaleInPlace(z, vae.config.scalingFactor)
        return z
    }

    /// x̂ = D(z / s), in about [-1, 1] (in tiles when `tiling` is given); in pixel space z itself.
    public func decode(_ z: Tensor, tiling: TiledDecoding? = nil) -> Tensor {
        guard let vae else { return z }
        let s = vae.config.scalingFactor
        let unscaled = map(z) { $0 / s }
        if let tiling { return vae.decodeTiled(unscaled, tiling) }
        return vae.decode(unscaled)
    }
}
