"""talk2dino_ros: open-vocabulary semantic segmentation for ROS 2 (Talk2DINO, CLIP-DINOiser)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'talk2dino_ros'

# name -> module:function; each also runs as `python -m talk2dino_ros.<module>`
CONSOLE_SCRIPTS = {
    'segment_node': 'talk2dino_ros.ros.segment_node:main',
    'segment_lifecycle_node': 'talk2dino_ros.ros.segment_node:main_lifecycle',
    'segment_image': 'talk2dino_ros.cli.segment_image:main',
    'benchmark': 'talk2dino_ros.cli.speed_benchmark:main',
    'evaluate': 'talk2dino_ros.cli.evaluate:main',
    'train': 'talk2dino_ros.cli.train:main',
    'fetch_weights': 'talk2dino_ros.cli.fetch_weights:main',
    'make_random_weights': 'talk2dino_ros.cli.make_random_weights:main',
    'image_folder_publisher': 'talk2dino_ros.cli.image_folder_publisher:main',
    'segment_bag': 'talk2dino_ros.cli.segment_bag:main',
    'make_demo_bag': 'talk2dino_ros.cli.make_demo_bag:main',
    'soak': 'talk2dino_ros.cli.soak:main',
    'convert_dataset': 'talk2dino_ros.cli.convert_dataset:main',
    'export_model': 'talk2dino_ros.cli.export_model:main',
}

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(include=[PACKAGE, PACKAGE + '.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.py')),
        ('share/' + PACKAGE + '/config', glob('config/*')),
        ('share/' + PACKAGE + '/msg', glob('msg/*.msg')),
        ('share/' + PACKAGE + '/srv', glob('srv/*.srv')),
    ],
    install_requires=['setuptools'],
    # optional pictures: `evaluate --plot DIR` charts and `train fit` curves (pip install '.[plots]')
    # optional runtimes for the exported backbone (`backend` openvino / onnxruntime / tensorrt); each
    # brings the ONNX exporter's needs (onnx) with it. TensorRT on Jetson comes with JetPack instead.
    extras_require={'plots': ['matplotlib>=3.7'],
                    'openvino': ['openvino>=2024.0', 'onnx>=1.16'],
                    'onnxruntime': ['onnxruntime>=1.18', 'onnx>=1.16'],
                    'tensorrt': ['tensorrt>=10.0', 'onnx>=1.16']},
    zip_safe=True,
    maintainer='talk2dino_ros maintainers',
    maintainer_email='maintainers@talk2dino-ros.invalid',
    description='Open-vocabulary semantic segmentation node for ROS 2 (Talk2DINO, CLIP-DINOiser)',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={'console_scripts': [f'{k} = {v}' for k, v in CONSOLE_SCRIPTS.items()]},
)
