import os


def list_python_files(folder):
    paths = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            paths.append(os.path.join(folder, name))
    return paths
