/**
 * A folder of PNG images, one sub-folder per class (`cats/001.png`, `dogs/001.png`): classes are the
 * sub-folders' names, sorted. Every image must have the same size; grey images give one channel,
 * colour ones three (alpha is dropped). Pixels in [0, 1].
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { DataFileError, numberClasses, type LabelledData } from './labelled';

/** `channels`: what the model takes (data.shape), so a client whose colour images happen to be all grey still gives 3. */
export function readPngFolder(dir: string, knownClasses?: readonly string[], channels?: 1 | 3): LabelledData {
  let folders: string[];
  try {
    folders = readdirSync(dir).filter((name) => statSync(join(dir, name)).isDirectory()).sort();
  } catch (err) {
    throw new DataFileError(`${dir}: cannot read the folder: ${(err as Error).message}`);
  }
  if (!folders.length) throw new DataFileError(`${dir}: no sub-folders; put each class's PNG images in a sub-folder named after it`);
  const { index, names: classNames } = numberClasses(folders, knownClasses, dir);
  const images: { file: string; label: number; png: PNG }[] = [];
  folders.forEach((name) => {
    const label = index.get(name)!;
    for (const entry of readdirSync(join(dir, name)).filter((f) => f.toLowerCase().endsWith('.png')).sort()) {
      const file = join(dir, name, entry);
      try {
        images.push({ file, label, png: PNG.sync.read(readFileSync(file)) });
      } catch (err) {
        throw new DataFileError(`${file}: not a readable PNG (${(err as Error).message})`);
      }
    }
  });
  if (!images.length) throw new DataFileError(`${dir}: no .png files in its sub-folders (${classNames.join(', ')})`);
  const [first] = images;
  const odd = images.find((i) => i.png.width !== first.png.width || i.png.height !== first.png.height);
  if (odd) {
    throw new DataFileError(`${odd.file}: ${odd.png.width}x${odd.png.height}, but ${first.file} is ${first.png.width}x${first.png.height}; every image must have the same size`);
  }
  const { width, height } = first.png;
  const depth = channels ?? (images.every((i) => isGrey(i.png)) ? 1 : 3);
  const per = width * height * depth;
  const features = new Float32Array(images.length * per);
  images.forEach(({ png }, n) => {
    for (let p = 0; p < width * height; p++) {
      for (let c = 0; c < depth; c++) features[n * per + p * depth + c] = png.data[p * 4 + c] / 255;
    }
  });
  return { features, shape: [height, width, depth], labels: Uint8Array.from(images, (i) => i.label), size: images.length, classNames };
}

/** pngjs decodes every PNG to RGBA: grey when red, green and blue agree everywhere. */
function isGrey(png: PNG): boolean {
  for (let i = 0; i < png.data.length; i += 4) if (png.data[i] !== png.data[i + 1] || png.data[i] !== png.data[i + 2]) return false;
  return true;
}
