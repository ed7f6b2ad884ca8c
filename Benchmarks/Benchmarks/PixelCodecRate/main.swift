import DICOMPixels
import Foundation
import Synchronization

/// The codec alone on the frames an import transcodes: for each native 512×512 16-bit (12 stored) CT file of a
/// generated archive, the frame (the file's last 512 KiB, its Pixel Data) is decoded into the engine's layout,
/// encoded as HTJ2K with resolution tile-parts and TLM, and decoded again to verify it, exactly as
/// `FrameProcessor` does during an import, on 1 and on 2 threads. Prints one JSON object.
///
/// Usage: PixelCodecRate FILE...
let paths = Array(CommandLine.arguments.dropFirst())
let description = PixelDescription(rows: 512, columns: 512, bitsAllocated: 16, bitsStored: 12)
let frameBytes = description.nativeFrameBytes!
let frames: [[UInt8]] = paths.compactMap { path in
    guard let data = FileManager.default.contents(atPath: path), data.count > frameBytes else { return nil }
    return Array(data.suffix(frameBytes))
}
guard !frames.isEmpty else {
    FileHandle.standardError.write(Data("no 512×512 native frames in the files given\n".utf8))
    exit(1)
}

/// Runs the pixel stage over `frames` split across `threads` threads; returns seconds and stored bytes.
func run(threads: Int) -> (seconds: Double, stored: Int) {
    let stored = Mutex(0)
    let start = Date()
    DispatchQueue.concurrentPerform(iterations: threads) { worker in
        let processor = FrameProcessor()
        let scratch = PixelScratch()
        var written = 0
        defer { stored.withLock { $0 += written } }
        for index in stride(from: worker, to: frames.count, by: threads) {
            do {
                let codestream = try frames[index].withUnsafeBytes { bytes in
                    try processor.encodeVerified(
                        processor.decode(bytes, encoding: .native(bigEndian: false), description: description, scratch: scratch),
                        description: description, scratch: scratch)
                }
                written += codestream.count
            } catch {
                fatalError("frame \(index): \(error)")
            }
        }
    }
    return (Date().timeIntervalSince(start), stored.withLock { $0 })
}

_ = run(threads: 1)  // warm-up: page in the codecs, size the scratch buffers
let one = run(threads: 1)
let two = run(threads: 2)
let megabytes = Double(frames.count * frameBytes) / 1_000_000
let report: [String: Any] = [
    "frames": frames.count, "megabytes": megabytes,
    "seconds_1_thread": one.seconds, "seconds_2_threads": two.seconds,
    "mb_per_s_1_thread": megabytes / one.seconds, "mb_per_s_2_threads": megabytes / two.seconds,
    "compression_ratio": Double(frames.count * frameBytes) / Double(one.stored),
]
let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
FileHandle.standardOutput.write(json + Data("\n".utf8))
