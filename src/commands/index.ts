/**
 * The explicit command table oclif loads (package.json oclif.commands). Keys are
 * command ids; with the space topic separator "img:create" is `tsemu img create`.
 */
import ImgCreate from './img/create.js';
import ImgConvert from './img/convert.js';
import ImgInfo from './img/info.js';

export const COMMANDS = {
  'img:create': ImgCreate,
  'img:convert': ImgConvert,
  'img:info': ImgInfo,
};
