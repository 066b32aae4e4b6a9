"""From labels and a registered depth image to places: ROS-free numpy building blocks of the 3D outputs.

One job per module: ``depth`` (encodings -> metres), ``intrinsics`` (pinhole model, scaling, CameraInfo),
``sampling`` (labels at depth resolution, nearest neighbour), ``projection`` (pixels -> points, stride and
voxel subsampling), ``cloud`` (the PointCloud2 layout, its bytes and a reader), ``regions`` (connected
regions per class, 2D and 3D boxes), ``scene`` (one frame's cloud and detections), ``pairing`` (colour/depth
pairing by stamp), ``ply`` (PLY files). Nothing here imports rclpy or torch.
"""
