// The datasets the trainers read. Shapes sample i is generated from (seed, i), so the set is
// unbounded and every run, interrupted or not, sees the same images in the same order.

import Foundation

/// Generated Shapes images (64×64) with their captions.
public struct ShapesDataset: ImageCaptionDataset {
    public let generator: ShapesGenerator
    public var imageSize: Int { 64 }
    public var count: Int? { nil }

    /// `seed` selects the stream: training and held-out sets use different seeds.
    public init(seed: UInt64) { generator = ShapesGenerator(seed: seed) }

    /// The stream of `seed` with the caption forms mixed by `formWeights` (see ShapesGenerator).
    public init(seed: UInt64, formWeights: [Int]) throws {
        generator = try ShapesGenerator(seed: seed, formWeights: formWeights)
    }

    /// A stream from `generator` as it is (its form mix and spread share).
    public init(generator: ShapesGenerator) { self.generator = generator }

    public func sample(_ index: Int) throws -> (image: [Float], caption: String) {
        let s = generator.sample(at: index)
        return (FolderDataset.chwPixels(s.image, size: imageSize), s.caption)
    }
}

/// A folder of images with same-named .txt captions, as a training dataset.
public struct FolderImageDataset: ImageCaptionDataset {
    public let folder: FolderDataset
    public var imageSize: Int { folder.size }
    public var count: Int? { folder.count }

    public init(directory: String, size: Int) throws { folder = try FolderDataset(directory: directory, size: size) }

    public func sample(_ index: Int) throws -> (image: [Float], caption: String) {
        let s = try folder.sample(at: index)
        return (s.pixels, s.caption)
    }
}
