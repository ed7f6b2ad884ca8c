import CDCMTKShim

/// The shim's event kinds, named for `switch` patterns.
enum CDCMTKShimKinds {
    static let sequenceStart = CDCMTKShim_SequenceStart
    static let itemStart = CDCMTKShim_ItemStart
    static let itemEnd = CDCMTKShim_ItemEnd
    static let sequenceEnd = CDCMTKShim_SequenceEnd
    static let pixelSequenceStart = CDCMTKShim_PixelSequenceStart
    static let fragment = CDCMTKShim_Fragment
    static let pixelSequenceEnd = CDCMTKShim_PixelSequenceEnd
}
