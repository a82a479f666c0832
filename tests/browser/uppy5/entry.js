import Uppy from '@uppy/core'
import AwsS3 from '@uppy/aws-s3'

// The page's only entry: stock Uppy, nothing wrapped.
window.UppyKit = { Uppy, AwsS3 }
