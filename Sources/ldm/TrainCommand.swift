// `ldm train vae | unet`: training runs with progress, checkpoints and resume.

import ArgumentParser
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train the VAE, or the U-Net with its text encoder.", subcommands: [])
}
